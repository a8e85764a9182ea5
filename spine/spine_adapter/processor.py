"""Alias of ``spine.consumer.processor``: the dotted path earlier releases published (hooks, queued jobs, Desk calls)."""

from spine.consumer.processor import process, process_scheduled, run_job
