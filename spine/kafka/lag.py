"""Consumer group lag per topic and partition. Plain Python: never imports Frappe."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, TopicPartition


@dataclass(frozen=True)
class PartitionLag:
	"""``lag`` = messages in the partition the group has not committed yet (``end - committed``)."""

	topic: str
	partition: int
	committed: int | None
	end: int
	lag: int

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
				low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
				done = committed.get(tp.partition)
				known = done is not None and done != OFFSET_INVALID and done >= 0
				result.append(
					PartitionLag(
						topic, tp.partition, done if known else None, high, high - (done if known else low)
					)
				)
		return result
	finally:
		consumer.close()
