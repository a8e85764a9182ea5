"""Consumer group lag per topic and partition. Plain Python: never imports Frappe."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, TopicPartition


@dataclass(frozen=True)
class PartitionLag:
	"""``lag`` = messages in the partition the group has not committed yet (``end - committed``)."""

	topic: str
	partition: int
	committed: int | None
	end: int
	lag: int
	leader: int = -1  # the broker leading the partition; -1: none (nobody can write or read it)
	replicas: int = 0
	in_sync: int = 0  # replicas in sync with the leader (fewer than ``replicas``: under-replicated)

	@property
	def health(self) -> str | None:
		"""What is wrong with the partition on the cluster, or None."""
		if self.leader < 0:
			return "no leader"
		if self.in_sync < self.replicas:
			return f"{self.in_sync} of {self.replicas} replicas in sync"
		return None

	def as_dict(self) -> dict[str, Any]:
		return asdict(self)


def group_lag(
	consumer_conf: dict[str, Any], topics: Iterable[str], timeout: float = 10
) -> list[PartitionLag]:
	"""Lag of ``consumer_conf["group.id"]`` on every partition of ``topics``, without joining the group.

	A partition the group never committed counts from its low watermark (what the group would
	read with ``auto.offset.reset=earliest``). Raises ``KafkaException`` if the broker does not answer.
	"""
	conf = {k: v for k, v in consumer_conf.items() if k not in ("group.instance.id",)}
	conf["enable.auto.commit"] = False
	consumer = Consumer(conf)
	try:
		result = []
		for topic in sorted(set(topics)):
			meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
			if meta is None or meta.error is not None or not meta.partitions:
				continue
			tps = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
			committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=timeout)}
			for tp in tps:
				part = meta.partitions[tp.partition]
				try:
					low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
				except KafkaException:
					if part.leader >= 0:
						raise
					low = high = -1  # no leader to ask: the end is unknown
				done = committed.get(tp.partition)
				known = done is not None and done != OFFSET_INVALID and done >= 0
				result.append(
					PartitionLag(
						topic, tp.partition, done if known else None, high,
						max(high - (done if known else low), 0) if high >= 0 else 0,
						part.leader, len(part.replicas), len(part.isrs),
					)
				)  # fmt: skip
		return result
	except KafkaException:
		consumer.poll(0)  # serve the queued error callbacks (a refused login, a failed TLS handshake)
		raise
	finally:
		consumer.close()
