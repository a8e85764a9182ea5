"""Alias of ``spine.producer.capture``: the dotted path earlier releases published (hooks, queued jobs, Desk calls)."""

from spine.producer.capture import on_event
