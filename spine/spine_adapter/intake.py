"""Alias of ``spine.consumer.intake``: the dotted path earlier releases published (hooks, queued jobs, Desk calls)."""

from spine.consumer.intake import store_batch
