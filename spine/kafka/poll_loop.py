"""The dispatcher's loop: poll Kafka in batches, hand each batch over, commit what is stored. Plain Python.

Delivery semantics (at-least-once into durable storage): a message counts as consumed only once
its durable copy exists. The hand-over (an RQ job in Redis) is not durable: Redis may lose it
(SIGKILL between snapshots, FLUSHALL, eviction, failover). So the offsets committed to Kafka
follow ``StoredOffsets`` (what the database holds per partition, written in the same transaction
as the rows), never the hand-over; on assignment every partition resumes from there; and while
running, a hand-over whose job vanished before storing makes its partition read again from the
stored offset. A message read twice is stored once (the intake's unique message id).
"""

from __future__ import annotations

import base64
import logging
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from spine.errors import ConsumerFatalError
from spine.kafka.doorbell import Waiter
from spine.kafka.stored import TP, StoredOffsets

log = logging.getLogger(__name__)

# While the hand-over is busy, what is polled is held and joined into one batch, at most this long:
# it would wait as long in the queue, and one job of many messages costs the worker about as much
# as a job of one (a site saving one document per commit sends one message per poll)
HOLD_SECONDS = 0.5
LAG_REPORT_SECONDS = 5.0

# After an idle rest that ended because a partition has something new, the dispatcher fetches this long
# before it may rest again, even if polls come back empty meanwhile: long while librdkafka still
# looks up where a partition starts, a fetch round trip once every position is known
NEWS_GRACE_SECONDS = 3.0
FETCH_GRACE_SECONDS = 0.1
# With an idle pause, a poll this long without a message is enough to rest: between the messages of
# a trickle the partitions are paused instead of fetched in a loop (a broker that answers empty
# fetches at once would otherwise keep librdkafka and itself busy the whole time)
IDLE_POLL_SECONDS = 0.01
# A resting dispatcher looks for news every idle_pause at first, twice as long after each look
# that finds nothing, at most this long (a ring of the doorbell, or news, starts it over): an idle
# site costs a few looks a second, not a hundred, while a site that was just busy looks at once
IDLE_PAUSE_MAX_SECONDS = 2.0

Record = dict[str, Any]


def to_record(msg: Message) -> Record:
	"""A JSON-able copy of a Kafka message: text stays text, other bytes travel as base64."""
	value, value_b64 = _text_or_b64(msg.value())
	key, key_b64 = _text_or_b64(msg.key())
	ts_type, ts = msg.timestamp()
	return {
		"topic": msg.topic(),
		"partition": msg.partition(),
		"offset": msg.offset(),
		"key": key,
		"key_b64": key_b64,
		"value": value,
		"value_b64": value_b64,
		"headers": {k: _text_or_b64(v)[0] for k, v in (msg.headers() or [])},
		"timestamp_ms": ts if ts_type else None,
	}


def record_value(record: Record) -> bytes | None:
	"""The original message value of a record made by ``to_record``."""
	value = record.get("value")
	if value is None:
		return None
	return base64.b64decode(value) if record.get("value_b64") else value.encode()


def _text_or_b64(data: bytes | None) -> tuple[str | None, bool]:
	if data is None:
		return None, False
	try:
		return data.decode("utf-8"), False
	except UnicodeDecodeError:
		return base64.b64encode(data).decode(), True


class HandOver(Protocol):
	"""Where batches go (an RQ queue): not durable, so each batch is followed until it is stored."""

	def __call__(self, records: list[Record], starts: dict[TP, int]) -> dict[TP, str]:
		"""Hand ``records`` over; ``starts[tp]`` is the offset the partition's part of the batch
		continues from. Returns a job id per partition; raises if nothing was accepted."""

	def vanished(self, job_id: str) -> bool:
		"""Whether the job can no longer store its messages (gone from Redis, or ended)."""

	def busy(self) -> bool:
		"""Whether a batch handed over now would wait behind others before a worker takes it."""

	def forget(self, tp: TP) -> None:
		"""Drop what the hand-over remembers of a partition (it is read again or moved away)."""


@dataclass
class _Handed:
	after: int  # the batch continues the partition from this offset
	until: int  # offset after its last message
	job_id: str | None


class Dispatcher:
	"""Consume ``topics()`` with ``consumer_conf``, hand batches to ``handover``, commit what ``offsets`` holds.

	``topics`` is called every ``refresh_seconds`` so a config change is followed without a
	restart. ``handover`` may raise: the batch is then offered again. What a poll returns is handed
	over at once while the hand-over is idle; while it is busy, polls are joined into one batch
	(up to ``batch_size`` messages or ``hold_seconds``), so a trickle of single messages becomes
	fewer, bigger jobs exactly when workers are behind. The first
	SIGTERM/SIGINT/SIGQUIT finishes the current batch, commits what is stored and leaves the
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
	):
		self.conf = dict(consumer_conf)
		self.topics = topics
		self.handover = handover
		self.offsets = offsets
		self.batch_size = batch_size
		self.poll_timeout = poll_timeout
		self.refresh_seconds = refresh_seconds
		self.audit_seconds = audit_seconds
		self.name = name
		self.on_cycle = on_cycle
		self.idle_pause = idle_pause
		self.hold_seconds = hold_seconds
		self.report_lag = report_lag
		self._next_lag_report = 0.0
		self.should_stop = should_stop
		self.doorbell = doorbell
		self._idle_interval = idle_pause
		self._stop_requested = False
		self.subscribed: list[str] = []
		self.handed_over = 0
		self.rewinds = 0  # partitions read again because a hand-over vanished
		self._consumer: Consumer | None = None
		self._cooperative = "cooperative" in str(self.conf.get("partition.assignment.strategy", ""))
		self._next: dict[TP, int] = {}  # offset after the last message handed over
		self._begun: set[TP] = set()  # partitions whose start position is recorded
		self._outstanding: dict[TP, deque[_Handed]] = {}  # handed over, not yet stored
		self._committed: dict[TP, int] = {}
		self._next_audit = 0.0
		self._held: list[Message] = []  # polled, not yet handed over (the hand-over was busy)
		self._held_since = 0.0
		self._no_rest_until = 0.0
		self._paused: set[TP] = set()  # paused by a rest that found nothing new: they stay paused

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
		self._no_rest_until = 0.0
		try:
			while not self.stopping and (max_batches is None or batches < max_batches):
				if self.on_cycle:
					self.on_cycle()
				if time.monotonic() >= next_refresh:
					self._refresh_subscription(consumer)
					next_refresh = time.monotonic() + self.refresh_seconds
				if not self.subscribed:
					time.sleep(min(self.poll_timeout, 1.0))
					continue
				msgs = self._next_batch(consumer)
				good = [m for m in msgs if not self._is_error(m)]
				if good and not self._held:
					self._held_since = time.monotonic()
					self._idle_interval = self.idle_pause  # traffic: look often again when it stops
				self._held.extend(good)
				if self._held and self._release():
					self._hand_over(consumer, self._held)
					self._held = []
					batches += 1
					self._no_rest_until = 0.0
				if time.monotonic() >= self._next_audit:
					self._audit(consumer)
				if self.report_lag and time.monotonic() >= self._next_lag_report:
					self._report_lag(consumer)
				if (
					not msgs
					and not self._held
					and self.idle_pause
					and time.monotonic() >= self._no_rest_until
					and self._rest(consumer)
				):
					# news is waiting: stay unpaused long enough for librdkafka to look up where to start
					# (a pause in the middle of that lookup starts it again, so pausing at every empty
					# poll could keep a partition from ever being fetched), or to fetch it
					grace = FETCH_GRACE_SECONDS if self._positions_known(consumer) else NEWS_GRACE_SECONDS
					self._no_rest_until = time.monotonic() + grace
			if self._held:  # stopping: what was held goes now (or is read again after the restart)
				self._hand_over(consumer, self._held)
				self._held = []
		finally:
			self._close(consumer)

	def _report_lag(self, consumer: Consumer) -> None:
		"""``report_lag({tp: end - committed})`` for the assigned partitions whose end is known (from
		the last fetch, no request), every ``LAG_REPORT_SECONDS``."""
		self._next_lag_report = time.monotonic() + LAG_REPORT_SECONDS
		lag = {}
		for p in consumer.assignment():
			tp = (p.topic, p.partition)
			try:
				low, high = consumer.get_watermark_offsets(p, cached=True)
			except KafkaException:
				continue
			if high < 0:
				continue
			committed = self._committed.get(tp)
			lag[tp] = max(high - (committed if committed is not None else max(low, 0)), 0)
		try:
			self.report_lag(lag)
		except Exception as e:
			log.debug("%s: lag not reported: %s", self.name, e)

	def _release(self) -> bool:
		"""Whether the held messages go now: the hand-over is idle, the batch is full, or they were
		held long enough."""
		if (
			self.stopping
			or len(self._held) >= self.batch_size
			or time.monotonic() - self._held_since >= self.hold_seconds
		):
			return True
		try:
			return not self.handover.busy()
		except Exception as e:
			log.debug("%s: could not tell whether the hand-over is busy (%s); handing over", self.name, e)
			return True

	def _drop_held(self, tps: set[TP]) -> None:
		"""Forget held messages of partitions read again or moved away (they are read again)."""
		self._held = [m for m in self._held if (m.topic(), m.partition()) not in tps]

	def _rest(self, consumer: Consumer) -> bool:
		"""Stop fetching until a partition has something new (looked for with one ListOffsets request
		every ``idle_pause`` seconds, doubling while nothing comes up to ``IDLE_PAUSE_MAX_SECONDS``, and
		at once when the doorbell rings for a followed topic), or ``refresh_seconds`` passed. For
		brokers that answer an empty fetch at once, which would keep librdkafka fetching in a loop at
		half a core. Hand-overs are still followed meanwhile. Returns whether it ended because
		something new is there."""
		assignment = consumer.assignment()
		if not assignment:
			return False
		fresh = [tp for tp in assignment if (tp.topic, tp.partition) not in self._paused]
		if fresh:
			consumer.pause(fresh)
			self._paused.update((tp.topic, tp.partition) for tp in fresh)
		news = False
		try:
			until = time.monotonic() + self.refresh_seconds
			while not self.stopping and time.monotonic() < until:
				rung = self.doorbell.wait(self._idle_interval) if self.doorbell else False
				if not self.doorbell:
					time.sleep(self._idle_interval)
				if time.monotonic() >= self._next_audit and self._audit(consumer):
					news = True  # a partition is read again
					break
				if self._has_news(consumer, assignment):
					news = True
					self._idle_interval = self.idle_pause  # look often again while this news is fetched
					break
				self._idle_interval = (
					self.idle_pause if rung else min(self._idle_interval * 2, IDLE_PAUSE_MAX_SECONDS)
				)
		finally:
			# nothing new: the partitions stay paused through the housekeeping between rests, so the
			# fetcher does not spin against a broker that answers at once (a rest every 2 s otherwise
			# cost a fetch loop of some milliseconds each time, a third of a percent of a core per site)
			if news or self.stopping:
				try:
					consumer.resume(assignment)
				except KafkaException as e:  # revoked meanwhile: resume what is still ours
					log.debug("%s: resume after an idle pause: %s", self.name, e)
					consumer.resume(consumer.assignment())
				self._paused.clear()
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

	def _next_batch(self, consumer: Consumer) -> list[Message]:
		"""Wait for the first message (up to poll_timeout, a moment between idle pauses, or a few
		milliseconds while messages are held), then take what is already fetched (no extra wait)."""
		if self._held:
			wait = 0.005
		elif not self.idle_pause:
			wait = self.poll_timeout
		elif time.monotonic() < self._no_rest_until:
			wait = min(self.poll_timeout, 0.05)
		else:
			wait = min(self.poll_timeout, IDLE_POLL_SECONDS)
		first = consumer.poll(wait)
		if first is None:
			return []
		room = self.batch_size - len(self._held) - 1
		return [first, *consumer.consume(room, 0)] if room > 0 else [first]

	def _hand_over(self, consumer: Consumer, msgs: list[Message]) -> None:
		records = [to_record(m) for m in msgs]
		starts: dict[TP, int] = {}
		ends: dict[TP, int] = {}
		for r in records:
			tp = (r["topic"], r["partition"])
			starts.setdefault(tp, self._next.get(tp, r["offset"]))
			ends[tp] = r["offset"] + 1
		delay = 0.5
		while True:
			try:
				if new := {tp: at for tp, at in starts.items() if tp not in self._begun}:
					self.offsets.begin(new)  # before the hand-over: a lost first job is then noticed
					self._begun.update(new)
					# and on the broker, so that a restart trusts the recorded start (see _on_assign)
					self._commit(consumer, new)
				jobs = self.handover(records, starts)
				break
			except Exception as e:
				if self.stopping:
					log.warning(
						"%s: stopping with %d messages not handed over; they will be read again",
						self.name,
						len(records),
					)
					raise SystemExit(1) from e
				log.error(
					"%s: could not hand %d messages (%s) over: %s; retrying in %.1fs, nothing committed",
					self.name,
					len(records),
					_span(records),
					e,
					delay,
				)
				time.sleep(delay)
				delay = min(delay * 2, 30)
		for tp, at in starts.items():
			self._outstanding.setdefault(tp, deque()).append(_Handed(at, ends[tp], jobs.get(tp)))
			self._next[tp] = ends[tp]
		self.handed_over += len(records)

	def _audit(
		self, consumer: Consumer, partitions: Sequence[TP] | None = None, *, read_again: bool = True
	) -> bool:
		"""Commit what is stored; read again a partition whose hand-over vanished. Returns whether
		some partition is read again."""
		self._next_audit = time.monotonic() + self.audit_seconds
		tps = list(partitions) if partitions is not None else [tp for tp, q in self._outstanding.items() if q]
		if not tps:
			return False
		try:
			stored = self.offsets.stored(tps)
		except Exception as e:
			log.warning(
				"%s: could not read the stored offsets (%s); committing nothing for now", self.name, e
			)
			return False
		self._settle(stored)
		self._commit(consumer, stored)
		rewound = False
		for tp in tps if read_again else ():
			queue = self._outstanding.get(tp)
			if not queue or not self._vanished(queue[0]):
				continue
			try:  # read again: the job may have stored just before it ended
				at = self.offsets.stored([tp]).get(tp, queue[0].after)
			except Exception:
				continue
			if at >= queue[0].until:
				continue
			rewound |= self._read_again(consumer, tp, at, queue[0])
		return rewound

	def _vanished(self, handed: _Handed) -> bool:
		try:
			return handed.job_id is None or self.handover.vanished(handed.job_id)
		except Exception as e:
			log.debug("%s: could not check job %s: %s", self.name, handed.job_id, e)
			return False  # unknown (Redis unreachable?): look again at the next check

	def _settle(self, stored: dict[TP, int]) -> None:
		for tp, at in stored.items():
			queue = self._outstanding.get(tp)
			while queue and queue[0].until <= at:
				queue.popleft()

	def _read_again(self, consumer: Consumer, tp: TP, at: int, lost: _Handed) -> bool:
		log.warning(
			"%s: messages %s[%d]@%d-%d were handed over (job %s) but the job vanished before storing "
			"them (Redis restarted, flushed or lost it); reading %s[%d] again from offset %d",
			self.name, tp[0], tp[1], lost.after, lost.until - 1, lost.job_id, tp[0], tp[1], at,
		)  # fmt: skip
		try:
			consumer.seek(TopicPartition(tp[0], tp[1], at))
		except KafkaException as e:
			log.warning("%s: could not seek %s[%d] to %d (%s); leaving it to the next assignment",
				self.name, tp[0], tp[1], at, e)  # fmt: skip
			return False
		self._outstanding[tp].clear()
		self._drop_held({tp})
		self._next[tp] = at
		self.handover.forget(tp)
		self.rewinds += 1
		return True

	def _commit(self, consumer: Consumer, stored: dict[TP, int]) -> None:
		"""Commit, per partition, the stored position where it moved on (never past what is stored)."""
		ahead = [
			TopicPartition(t, p, at) for (t, p), at in stored.items() if at > self._committed.get((t, p), -1)
		]
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
			self._committed[(tp.topic, tp.partition)] = tp.offset

	def _refresh_subscription(self, consumer: Consumer) -> None:
		try:
			wanted = sorted(set(self.topics()))
		except Exception as e:
			log.error(
				"%s: could not read the topics to follow (%s); keeping %s", self.name, e, self.subscribed
			)
			return
		if wanted == self.subscribed:
			return
		if wanted:
			consumer.subscribe(wanted, on_revoke=self._on_revoke, on_assign=self._on_assign)
			log.info("%s: following topics %s", self.name, ", ".join(wanted))
		else:
			self._leave_partitions(consumer, [(tp.topic, tp.partition) for tp in consumer.assignment()])
			consumer.unsubscribe()
			log.warning("%s: no topics configured in Spine Consumer Config; waiting for some", self.name)
		self.subscribed = wanted
		if self.doorbell:
			self.doorbell.topics = frozenset(wanted)

	def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
		"""Each partition starts where the durable copy ends. A stored position counts only where the
		group has a committed offset on the broker: without one the topic was made again or the
		broker is another one, and the position belongs to messages that are no longer there; the
		partition then starts as Kafka says (``auto.offset.reset``) and its start is recorded anew."""
		tps = [(p.topic, p.partition) for p in partitions]
		self._drop_held(set(tps))
		self._paused.difference_update(tps)  # an assigned partition starts unpaused
		try:
			stored = self.offsets.stored(tps)
		except Exception as e:
			stored = {}
			log.warning(
				"%s: could not read the stored offsets (%s); starting from the committed offsets, which "
				"never run ahead of them", self.name, e,
			)  # fmt: skip
		if stored:
			try:
				on_broker = {
					(c.topic, c.partition): c.offset
					for c in consumer.committed([TopicPartition(t, p) for t, p in stored], timeout=10)
					if c.offset >= 0
				}
				known = set(on_broker)
				self._committed.update(on_broker)
			except KafkaException as e:
				log.warning(
					"%s: could not read the committed offsets (%s); trusting the stored ones", self.name, e
				)
				known = set(stored)
			for t, p in sorted(set(stored) - known):
				log.warning(
					"%s: %s[%d] was stored up to %d, but the group has no committed offset there (the topic "
					"was made again, or this is another broker); reading it from where auto.offset.reset "
					"says and storing from there", self.name, t, p, stored.pop((t, p)),
				)  # fmt: skip
		for p in partitions:
			tp = (p.topic, p.partition)
			self._outstanding.pop(tp, None)
			self._next.pop(tp, None)
			self._begun.discard(tp)
			if tp in stored:
				p.offset = stored[tp]
				self._next[tp] = stored[tp]
				self._begun.add(tp)
		if self._cooperative:
			consumer.incremental_assign(partitions)
		else:
			consumer.assign(partitions)
		log.info(
			"%s: assigned %s", self.name,
			", ".join(f"{t}[{p}]" + (f" from stored offset {stored[(t, p)]}" if (t, p) in stored else "")
				for t, p in tps) or "none",
		)  # fmt: skip

	def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
		log.info("%s: partitions %s revoked; committing what is stored", self.name, _partitions(partitions))
		self._paused.difference_update((p.topic, p.partition) for p in partitions)
		self._leave_partitions(consumer, [(p.topic, p.partition) for p in partitions])

	def _leave_partitions(self, consumer: Consumer, tps: list[TP]) -> None:
		if tps:
			self._audit(consumer, tps, read_again=False)
		self._drop_held(set(tps))
		for tp in tps:
			self._outstanding.pop(tp, None)
			self._next.pop(tp, None)
			self._committed.pop(tp, None)
			self._begun.discard(tp)
			self.handover.forget(tp)

	def _is_error(self, msg: Message) -> bool:
		err = msg.error()
		if err is None:
			return False
		if err.fatal():
			member = self.conf.get("group.instance.id")
			raise ConsumerFatalError(
				f"{self.name}: the Kafka consumer stopped for good ({err.str()})"
				+ (
					f"; another consumer of group {self.conf.get('group.id')} uses group.instance.id {member}: "
					"is a second eventdispatcher serving this site from this host?"
					if member
					else ""
				)
			)
		if err.code() != KafkaError._PARTITION_EOF:
			log.warning("%s: consumer error on %s [%s]: %s", self.name, msg.topic(), msg.partition(), err)
		return True

	def _close(self, consumer: Consumer) -> None:
		try:
			self._audit(consumer, list(self._outstanding), read_again=False)
		finally:
			consumer.close()  # leaves the group, so the partitions move to the others at once
			log.info("%s: stopped after handing over %d messages", self.name, self.handed_over)


def _span(records: list[Record]) -> str:
	parts: dict[tuple[str, int], list[int]] = {}
	for r in records:
		parts.setdefault((r["topic"], r["partition"]), []).append(r["offset"])
	return ", ".join(f"{t}[{p}]@{min(o)}-{max(o)}" for (t, p), o in sorted(parts.items()))


def _partitions(partitions: list[TopicPartition]) -> str:
	return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "none"
