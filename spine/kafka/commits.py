"""How far the consumer group's offsets are committed on the broker. Plain Python.

The one rule: a partition is committed only up to its stored position (``spine.kafka.stored``),
never to what was merely handed over, so the broker's offsets never run ahead of the durable copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from spine.kafka.stored import TP

log = logging.getLogger(__name__)


class Commits:
	"""What this dispatcher committed per partition, and the commit that moves it."""

	def __init__(self, name: str):
		self.name = name
		self.at: dict[TP, int] = {}

	def commit(self, consumer: Consumer, stored: dict[TP, int]) -> None:
		"""Commit, per partition, the stored position where it moved on (never past what is stored);
		a failed commit is logged and tried again at the next check."""
		ahead = [TopicPartition(t, p, at) for (t, p), at in stored.items() if at > self.at.get((t, p), -1)]
		if not ahead:
			return
		try:
			consumer.commit(offsets=ahead, asynchronous=False)
		except KafkaException as e:
			log.warning(
				"%s: offset commit failed (%s); will retry at the next check (what is stored stays stored)",
				self.name,
				e,
			)
			return
		for tp in ahead:
			self.at[(tp.topic, tp.partition)] = tp.offset

	def learn(self, on_broker: dict[TP, int]) -> None:
		"""Offsets the broker holds for the group (read at assignment)."""
		self.at.update(on_broker)

	def forget(self, tps: Iterable[TP]) -> None:
		for tp in tps:
			self.at.pop(tp, None)

	def lag(self, consumer: Consumer) -> dict[TP, int]:
		"""``{tp: end - committed}`` for the assigned partitions whose end is known (from the last
		fetch, no request); a partition never committed counts from its low watermark."""
		lag = {}
		for p in consumer.assignment():
			tp = (p.topic, p.partition)
			try:
				low, high = consumer.get_watermark_offsets(p, cached=True)
			except KafkaException:
				continue
			if high < 0:
				continue
			committed = self.at.get(tp)
			lag[tp] = max(high - (committed if committed is not None else max(low, 0)), 0)
		return lag
