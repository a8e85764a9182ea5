"""Alias of ``spine.producer.relay``: the dotted path earlier releases published (hooks, queued jobs, Desk calls)."""

from spine.producer.relay import drain, drain_scheduled, kick
