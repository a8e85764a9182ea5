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


ZERO_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA"  # what a broker without topic ids answers (base64 of 16 zero bytes)


def topic_ids(admin_conf: dict[str, Any], topics: Iterable[str], timeout: float = 5) -> dict[str, str]:
	"""Each topic's id (Kafka gives a topic a new one when it is made again), for those of ``topics``
	that have one; ``{}`` when the broker does not answer or keeps no ids (never raises)."""
	from confluent_kafka import TopicCollection

	wanted = sorted(set(topics))
	if not wanted:
		return {}
	client = AdminClient(admin_conf)  # kept while the futures run: a client that goes away cancels them
	try:
		futures = client.describe_topics(TopicCollection(wanted), request_timeout=timeout)
	except (KafkaException, ValueError, TypeError):
		return {}
	found = {}
	for topic, future in futures.items():
		try:
			described = future.result(timeout + 1)
		except Exception:
			continue
		tid = str(getattr(described, "topic_id", "") or "")
		if tid and tid != ZERO_TOPIC_ID:
			found[topic] = tid
	return found
