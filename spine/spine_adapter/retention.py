"""Alias of ``spine.desk.retention``: the dotted path earlier releases published (hooks, queued jobs, Desk calls)."""

from spine.desk.retention import purge_daily
