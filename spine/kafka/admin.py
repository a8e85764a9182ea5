"""Broker checks for the config forms: does the broker answer, which topics exist; create missing ones.

Plain Python: never imports Frappe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def check(admin_conf: dict[str, Any], topics: Iterable[str], timeout: float = 5) -> dict[str, Any]:
	"""``{"ok", "brokers", "error", "topics": [{"topic", "exists", "partitions"}]}`` — never raises."""
	wanted = sorted(set(topics))
	try:
		meta = AdminClient(admin_conf).list_topics(timeout=timeout)
	except KafkaException as e:
		err = e.args[0] if e.args else e
		return {"ok": False, "brokers": 0, "error": f"the broker did not answer: {getattr(err, 'str', lambda: err)()}",
			"topics": [{"topic": t, "exists": None, "partitions": None} for t in wanted]}  # fmt: skip
	found = meta.topics
	return {
		"ok": True,
		"brokers": len(meta.brokers),
		"error": None,
		"topics": [
			{"topic": t, "exists": t in found and found[t].error is None,
				"partitions": len(found[t].partitions) if t in found and found[t].error is None else None}
			for t in wanted
		],
	}  # fmt: skip


def create_topics(
	admin_conf: dict[str, Any],
	topics: Iterable[str],
	partitions: int = -1,
	replication: int = -1,
	timeout: float = 15,
	config: dict[str, str] | None = None,
) -> dict[str, str | None]:
	"""Create ``topics`` (with topic ``config``, e.g. ``{"cleanup.policy": "compact"}``; ``-1``
	partitions or replication: the cluster's ``num.partitions`` / ``default.replication.factor``);
	returns ``{topic: None}`` on success or ``{topic: error text}`` (exists counts as success)."""
	admin = AdminClient(admin_conf)
	futures = admin.create_topics(
		[NewTopic(t, partitions, replication, config=config or {}) for t in sorted(set(topics))]
	)
	results: dict[str, str | None] = {}
	for topic, future in futures.items():
		try:
			future.result(timeout)
			results[topic] = None
		except KafkaException as e:
			err = e.args[0] if e.args else None
			already = err is not None and err.code() == err.TOPIC_ALREADY_EXISTS
			results[topic] = None if already else (err.str() if err is not None else str(e))
	return results
