"""Alias of ``spine.desk.dashboard``: the dotted path earlier releases published (hooks, queued jobs, Desk calls)."""

from spine.desk.dashboard import (
	consumer_lag_by_partition,
	consumer_lag_total,
	messages_per_hour,
	oldest_pending_minutes,
	processed_last_hour,
)
