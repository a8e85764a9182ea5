"""The dispatcher's loop: poll Kafka in batches, hand each batch over, commit what is stored. Plain Python.

Delivery semantics (at-least-once into durable storage): a message counts as consumed only once
its durable copy exists. The hand-over (an RQ job in Redis) is not durable: Redis may lose it
(SIGKILL between snapshots, FLUSHALL, eviction, failover). So the offsets committed to Kafka
follow ``StoredOffsets`` (what the database holds per partition, written in the same transaction
as the rows), never the hand-over; on assignment every partition resumes from there; and while
running, a hand-over whose job vanished before storing makes its partition read again from the
stored offset. A message read twice is stored once (the intake's unique message id).

The loop is thin; each rule has a part of its own:

| part | owns |
|---|---|
| ``subscription.Subscription`` | what to follow, and where an assigned partition starts |
| ``holding.Holding`` | what to hand over and when (hold and join while the hand-over is busy) |
| ``outstanding.Outstanding`` | what was handed over and is not stored yet |
| ``audit.Audit`` | what vanished and must be read again; settling and committing on a schedule |
| ``commits.Commits`` | how far offsets are committed (never past the stored position, ``stored``) |
| ``idle_rest.IdleRest`` | when to rest (only on a broker that answers empty fetches at once) |
| ``late_topics.LateTopics`` | when the group never assigned a subscribed topic that now exists |
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, Message

from spine.kafka.audit import Audit
from spine.kafka.commits import Commits
from spine.kafka.consumer_errors import is_error
from spine.kafka.doorbell import Waiter
from spine.kafka.handover import HandOver
from spine.kafka.holding import Holding
from spine.kafka.idle_rest import IdleRest
from spine.kafka.outstanding import Outstanding
from spine.kafka.records import Record, record_value, span, to_record
from spine.kafka.stored import TP, StoredOffsets
from spine.kafka.subscription import Subscription

__all__ = ["Dispatcher", "HandOver", "Record", "record_value", "to_record"]

log = logging.getLogger(__name__)

# While the hand-over is busy, what is polled is held and joined into one batch, at most this long:
# it would wait as long in the queue, and one job of many messages costs the worker about as much
# as a job of one (a site saving one document per commit sends one message per poll)
HOLD_SECONDS = 0.5
LAG_REPORT_SECONDS = 5.0


class Dispatcher:
	"""Consume ``topics()`` with ``consumer_conf``, hand batches to ``handover``, commit what ``offsets`` holds.

	``topics`` is called every ``refresh_seconds`` so a config change is followed without a
	restart, and at the next poll when ``config_bell`` is rung (a saved consumer config).
	``handover`` may raise: the batch is then offered again. What a poll returns is handed
	over at once while the hand-over is idle; while it is busy, polls are joined into one batch (up
	to ``batch_size`` messages or ``hold_seconds``). With ``admin_conf``, each assigned topic's id is
	looked up, so a stored position still applies after the group's committed offsets expired, and a
	subscribed topic that exists but that the group never assigned makes it join again. The
	first SIGTERM/SIGINT/SIGQUIT finishes the current batch, commits what is stored and leaves the
	group; a second one exits at once. ``should_stop`` (asked every cycle) stops it the same way.
	"""

	def __init__(
		self,
		consumer_conf: dict[str, Any],
		topics: Callable[[], Sequence[str]],
		handover: HandOver,
		offsets: StoredOffsets,
		*,
		batch_size: int = 1000,
		poll_timeout: float = 1.0,
		refresh_seconds: float = 10.0,
		audit_seconds: float = 0.5,
		name: str = "spine-dispatcher",
		on_cycle: Callable[[], None] | None = None,
		idle_pause: float = 0.0,
		hold_seconds: float = HOLD_SECONDS,
		report_lag: Callable[[dict[TP, int]], None] | None = None,
		should_stop: Callable[[], bool] | None = None,
		doorbell: Waiter | None = None,
		config_bell: Waiter | None = None,
		admin_conf: dict[str, Any] | None = None,
	):
		self.conf = dict(consumer_conf)
		self.handover = handover
		self.offsets = offsets
		self.poll_timeout = poll_timeout
		self.refresh_seconds = refresh_seconds
		self.name = name
		self.on_cycle = on_cycle
		self.report_lag = report_lag
		self.should_stop = should_stop
		self.doorbell = doorbell
		self.config_bell = config_bell
		self.handed_over = 0
		self._stop_requested = False
		self._next_lag_report = 0.0
		self._consumer: Consumer | None = None
		self.outstanding = Outstanding()
		self.commits = Commits(name)
		self.holding = Holding(name, handover, batch_size, hold_seconds)
		self.audit = Audit(name, offsets, handover, self.outstanding, self.commits, audit_seconds,
			on_read_again=lambda tp: self.holding.drop([tp]))  # fmt: skip
		self.idle = IdleRest(name, idle_pause, refresh_seconds, doorbell, self.audit, self.audit.due)
		lookup = late = None
		if admin_conf:
			from spine.kafka.admin import group_topics, topic_ids
			from spine.kafka.late_topics import LateTopics

			lookup = lambda topics: topic_ids(admin_conf, topics)  # noqa: E731
			group = self.conf["group.id"]
			late = LateTopics(
				lambda topics: set(topic_ids(admin_conf, topics)), lambda: group_topics(admin_conf, group)
			)
		self.subscription = Subscription(
			name, topics, offsets, self.outstanding, self.commits, self.holding, self.idle, self.audit,
			handover.forget, cooperative="cooperative" in str(self.conf.get("partition.assignment.strategy", "")),
			doorbell=doorbell, topic_ids=lookup, late=late,
		)  # fmt: skip

	@property
	def subscribed(self) -> list[str]:
		return self.subscription.subscribed

	@property
	def rewinds(self) -> int:
		"""Partitions read again because a hand-over vanished."""
		return self.audit.rewinds

	@property
	def stopping(self) -> bool:
		"""Whether to finish the batch, commit and leave: a stop signal came, or ``should_stop()``."""
		return self._stop_requested or bool(self.should_stop and self.should_stop())

	@stopping.setter
	def stopping(self, value: bool) -> None:
		self._stop_requested = value

	def stop(self, *_: Any) -> None:
		"""First signal: finish the batch, commit, leave. A second one exits immediately."""
		if self._stop_requested:
			log.warning("%s: second stop signal, exiting without waiting", self.name)
			raise SystemExit(1)
		log.info("%s: stop requested; finishing the current batch, committing, leaving the group", self.name)
		self._stop_requested = True

	def install_signal_handlers(self) -> None:
		for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
			signal.signal(sig, self.stop)

	def run(self, max_batches: int | None = None) -> None:
		"""Poll until stopped (or ``max_batches`` batches were handed over, for tests)."""
		consumer = self._consumer = Consumer(self.conf)
		batches = 0
		next_refresh = 0.0
		try:
			while not self.stopping and (max_batches is None or batches < max_batches):
				if self.on_cycle:
					self.on_cycle()
				if time.monotonic() >= next_refresh or self._config_changed():
					self.subscription.refresh(consumer)
					next_refresh = time.monotonic() + self.refresh_seconds
				if not self.subscription.subscribed:
					time.sleep(min(self.poll_timeout, 1.0))
					continue
				msgs = self._poll(consumer)
				if self.holding.add([m for m in msgs if not is_error(m, self.name, self.conf)]):
					self.idle.traffic()
				if self.holding.due(self.stopping):
					self._hand_over(consumer, self.holding.take())
					batches += 1
					self.idle.handed_over()
				if self.audit.due():
					self.audit(consumer)
				if self.report_lag and time.monotonic() >= self._next_lag_report:
					self._report_lag(consumer)
				if not msgs and not self.holding and self.idle.may_rest() and self._rest(consumer):
					self.idle.news_found(consumer)
			if self.holding:  # stopping: what was held goes now (or is read again after the restart)
				self._hand_over(consumer, self.holding.take())
		finally:
			self._close(consumer)

	def _config_changed(self) -> bool:
		"""Whether the site's consumer config was saved since the last look (``config_bell`` rung):
		its topics are read again at once, not at the next refresh."""
		return self.config_bell is not None and self.config_bell.wait(0)

	def _rest(self, consumer: Consumer) -> bool:
		"""Rest until news (``IdleRest.rest``); returns whether news ended it."""
		return self.idle.rest(consumer, lambda: self.stopping)

	def _poll(self, consumer: Consumer) -> list[Message]:
		"""Wait for the first message (as long as ``IdleRest.poll_wait`` says), then take what is
		already fetched (no extra wait)."""
		first = consumer.poll(self.idle.poll_wait(self.poll_timeout, bool(self.holding)))
		if first is None:
			return []
		room = self.holding.room() - 1
		return [first, *consumer.consume(room, 0)] if room > 0 else [first]

	def _hand_over(self, consumer: Consumer, msgs: list[Message]) -> None:
		"""Hand ``msgs`` over (retrying until Redis takes them), after recording durably where each
		partition seen for the first time starts."""
		records = [to_record(m) for m in msgs]
		starts, ends = self.outstanding.spans(records)
		delay = 0.5
		while True:
			try:
				if new := self.outstanding.unbegun(starts):
					ids = self.subscription.begin_ids(list(new))
					if ids:
						self.offsets.begin(new, topic_ids=ids)
					else:
						self.offsets.begin(new)  # before the hand-over: a lost first job is then noticed
					self.outstanding.begun.update(new)
					# and on the broker, so that a restart trusts the recorded start
					self.commits.commit(consumer, new)
				jobs = self.handover(records, starts)
				break
			except Exception as e:
				if self.stopping:
					log.warning("%s: stopping with %d messages not handed over; they will be read again",
						self.name, len(records))  # fmt: skip
					raise SystemExit(1) from e
				log.error(
					"%s: could not hand %d messages (%s) over: %s; retrying in %.1fs, nothing committed",
					self.name, len(records), span(records), e, delay,
				)  # fmt: skip
				time.sleep(delay)
				delay = min(delay * 2, 30)
		self.outstanding.add(starts, ends, jobs)
		self.handed_over += len(records)

	def _report_lag(self, consumer: Consumer) -> None:
		self._next_lag_report = time.monotonic() + LAG_REPORT_SECONDS
		try:
			self.report_lag(self.commits.lag(consumer))
		except Exception as e:
			log.debug("%s: lag not reported: %s", self.name, e)

	def _close(self, consumer: Consumer) -> None:
		try:
			self.audit(consumer, list(self.outstanding.queues), read_again=False)
		finally:
			consumer.close()  # leaves the group, so the partitions move to the others at once
			log.info("%s: stopped after handing over %d messages", self.name, self.handed_over)
