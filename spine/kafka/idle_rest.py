"""When the dispatcher rests: only where the broker needs it. Plain Python.

Apache Kafka holds an empty fetch for ``fetch.wait.max.ms`` and answers it the moment a message
arrives, so a dispatcher on Kafka never rests (``idle_pause`` 0). The local development broker
answers an empty fetch at once, which would keep librdkafka fetching in a loop at half a core; with
``idle_pause`` the dispatcher then pauses its partitions after a poll that found nothing and looks
for news with one ListOffsets request every ``idle_pause`` seconds, twice as long after each look
that finds nothing (up to ``IDLE_PAUSE_MAX_SECONDS``), and at once when the bench's doorbell rings
for a followed topic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from spine.kafka.doorbell import Waiter
from spine.kafka.stored import TP

log = logging.getLogger(__name__)

# After a rest that ended because a partition has something new, the dispatcher fetches this long
# before it may rest again, even if polls come back empty meanwhile: long while librdkafka still
# looks up where a partition starts (a pause in the middle of that lookup starts it again), a
# fetch round trip once every position is known
NEWS_GRACE_SECONDS = 3.0
FETCH_GRACE_SECONDS = 0.1
# With an idle pause, a poll this long without a message is enough to rest: between the messages of
# a trickle the partitions are paused instead of fetched in a loop
IDLE_POLL_SECONDS = 0.01
IDLE_PAUSE_MAX_SECONDS = 2.0


class IdleRest:
	"""The rests of one dispatcher (none when ``idle_pause`` is 0)."""

	def __init__(
		self,
		name: str,
		idle_pause: float,
		refresh_seconds: float,
		doorbell: Waiter | None,
		audit: Callable[[Consumer], bool],
		audit_due: Callable[[], bool],
	):
		self.name = name
		self.idle_pause = idle_pause
		self.refresh_seconds = refresh_seconds
		self.doorbell = doorbell
		self.audit = audit
		self.audit_due = audit_due
		self.interval = idle_pause
		self.no_rest_until = 0.0
		self.paused: set[TP] = set()  # paused by a rest that found nothing new: they stay paused

	def traffic(self) -> None:
		"""Messages came: when they stop, look often again."""
		self.interval = self.idle_pause

	def handed_over(self) -> None:
		self.no_rest_until = 0.0

	def poll_wait(self, poll_timeout: float, holding: bool) -> float:
		"""How long the next poll waits for its first message: a few milliseconds while messages are
		held, the whole ``poll_timeout`` on a broker that holds empty fetches, a moment between rests."""
		if holding:
			return 0.005
		if not self.idle_pause:
			return poll_timeout
		if time.monotonic() < self.no_rest_until:
			return min(poll_timeout, 0.05)
		return min(poll_timeout, IDLE_POLL_SECONDS)

	def may_rest(self) -> bool:
		return bool(self.idle_pause) and time.monotonic() >= self.no_rest_until

	def news_found(self, consumer: Consumer) -> None:
		"""A rest ended with news: stay unpaused long enough to look up where to start, or to fetch."""
		grace = FETCH_GRACE_SECONDS if self._positions_known(consumer) else NEWS_GRACE_SECONDS
		self.no_rest_until = time.monotonic() + grace

	def forget(self, tps: list[TP]) -> None:
		"""Partitions assigned or revoked start unpaused."""
		self.paused.difference_update(tps)

	def rest(self, consumer: Consumer, stopping: Callable[[], bool]) -> bool:
		"""Stop fetching until a partition has something new (or ``refresh_seconds`` passed); the
		audit still runs meanwhile. Returns whether it ended because something new is there."""
		assignment = consumer.assignment()
		if not assignment:
			return False
		fresh = [tp for tp in assignment if (tp.topic, tp.partition) not in self.paused]
		if fresh:
			consumer.pause(fresh)
			self.paused.update((tp.topic, tp.partition) for tp in fresh)
		news = False
		try:
			until = time.monotonic() + self.refresh_seconds
			while not stopping() and time.monotonic() < until:
				rung = self.doorbell.wait(self.interval) if self.doorbell else False
				if not self.doorbell:
					time.sleep(self.interval)
				if self.audit_due() and self.audit(consumer):
					news = True  # a partition is read again
					break
				if self._has_news(consumer, assignment):
					news = True
					self.interval = self.idle_pause  # look often again while this news is fetched
					break
				self.interval = self.idle_pause if rung else min(self.interval * 2, IDLE_PAUSE_MAX_SECONDS)
		finally:
			# nothing new: the partitions stay paused through the housekeeping between rests, so the
			# fetcher does not spin against a broker that answers at once
			if news or stopping():
				try:
					consumer.resume(assignment)
				except KafkaException as e:  # revoked meanwhile: resume what is still ours
					log.debug("%s: resume after an idle pause: %s", self.name, e)
					consumer.resume(consumer.assignment())
				self.paused.clear()
				self._has_news(consumer, assignment)  # a request wakes librdkafka's fetcher now, not in 1 s
		return news

	def _positions_known(self, consumer: Consumer) -> bool:
		"""Whether librdkafka knows where to fetch every assigned partition (no start lookup pending)."""
		try:
			return all(p.offset >= 0 for p in consumer.position(consumer.assignment()))
		except KafkaException:
			return False

	def _has_news(self, consumer: Consumer, assignment: list[TopicPartition]) -> bool:
		"""Whether any partition has messages after this consumer's position (True if unsure)."""
		try:
			latest = consumer.offsets_for_times(
				[TopicPartition(tp.topic, tp.partition, -1) for tp in assignment], timeout=1
			)
			positions = consumer.position(assignment)
			unknown = [p for p in positions if p.offset < 0]
			committed = (
				{(c.topic, c.partition): c.offset for c in consumer.committed(unknown, timeout=1)}
				if unknown
				else {}
			)
		except KafkaException:
			return True
		for end, at in zip(latest, positions, strict=True):
			start = at.offset if at.offset >= 0 else max(committed.get((at.topic, at.partition), 0), 0)
			if end.offset > start:
				return True
		return False
