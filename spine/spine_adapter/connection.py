"""Alias of ``spine.desk.connection``: the dotted path earlier releases published (hooks, queued jobs, Desk calls)."""

from spine.desk.connection import check_connection, create_missing_topics, show_connection
