"""The dispatcher's loop: poll Kafka in batches, hand the batch over, then commit. Plain Python.

Delivery semantics (at-least-once into the hand-over): offsets are stored only after
``submit`` returned, i.e. after Redis accepted the job, and committed after each batch and on
shutdown or partition revocation. A crash between submit and commit redelivers the batch;
Message Log's unique message id makes the second copy a no-op.
"""

from __future__ import annotations

import base64
import logging
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

log = logging.getLogger(__name__)

# After an idle rest that ended because a partition has something new, the dispatcher fetches this long
# before it may rest again, even if polls come back empty meanwhile
NEWS_GRACE_SECONDS = 1.0

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


class Dispatcher:
	"""Consume ``topics()`` with ``consumer_conf`` and hand each batch to ``submit``.

	``topics`` is called every ``refresh_seconds`` so a config change is followed without a
	restart. ``submit`` must return only when the batch is durable (it may raise: the batch is
	then offered again, offsets untouched). The first SIGTERM/SIGINT/SIGQUIT finishes the
	current batch, commits and leaves the group; a second one exits at once.
	"""

	def __init__(
		self,
		consumer_conf: dict[str, Any],
		topics: Callable[[], Sequence[str]],
		submit: Callable[[list[Record]], None],
		*,
		batch_size: int = 1000,
		poll_timeout: float = 1.0,
		refresh_seconds: float = 10.0,
		min_commit_count: int = 1,
		name: str = "spine-dispatcher",
		on_cycle: Callable[[], None] | None = None,
		idle_pause: float = 0.0,
	):
		self.conf = dict(consumer_conf)
		self.topics = topics
		self.submit = submit
		self.batch_size = batch_size
		self.poll_timeout = poll_timeout
		self.refresh_seconds = refresh_seconds
		self.min_commit_count = max(1, int(min_commit_count))
		self.name = name
		self.on_cycle = on_cycle
		self.idle_pause = idle_pause
		self.stopping = False
		self.subscribed: list[str] = []
		self.uncommitted = 0
		self.handed_over = 0
		self._consumer: Consumer | None = None

	def stop(self, *_: Any) -> None:
		"""First signal: finish the batch, commit, leave. A second one exits immediately."""
		if self.stopping:
			log.warning("%s: second stop signal, exiting without waiting", self.name)
			raise SystemExit(1)
		log.info("%s: stop requested; finishing the current batch, committing, leaving the group", self.name)
		self.stopping = True

	def install_signal_handlers(self) -> None:
		for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
			signal.signal(sig, self.stop)

	def run(self, max_batches: int | None = None) -> None:
		"""Poll until stopped (or ``max_batches`` batches were handed over, for tests)."""
		consumer = self._consumer = Consumer(self.conf)
		batches = 0
		next_refresh = no_rest_until = 0.0
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
				if good:
					self._hand_over(consumer, good)
					batches += 1
					no_rest_until = 0.0
				elif self.uncommitted:
					self._commit(consumer)
				elif (
					not msgs
					and self.idle_pause
					and time.monotonic() >= no_rest_until
					and self._rest(consumer)
				):
					# news is waiting: stay unpaused long enough for librdkafka to look up where to start
					# (a pause in the middle of that lookup starts it again, so pausing at every empty
					# poll could keep a partition from ever being fetched)
					no_rest_until = time.monotonic() + NEWS_GRACE_SECONDS
		finally:
			self._close(consumer)

	def _rest(self, consumer: Consumer) -> bool:
		"""Stop fetching until a partition has something new (checked every ``idle_pause`` seconds with
		one ListOffsets request), or ``refresh_seconds`` passed. For brokers that answer an empty fetch
		at once, which would keep librdkafka fetching in a loop at half a core. Returns whether it
		ended because something new is there."""
		assignment = consumer.assignment()
		if not assignment:
			return False
		consumer.pause(assignment)
		news = False
		try:
			until = time.monotonic() + self.refresh_seconds
			while not self.stopping and time.monotonic() < until:
				time.sleep(self.idle_pause)
				if self._has_news(consumer, assignment):
					news = True
					break
		finally:
			try:
				consumer.resume(assignment)
			except KafkaException as e:  # revoked meanwhile: resume what is still ours
				log.debug("%s: resume after an idle pause: %s", self.name, e)
				consumer.resume(consumer.assignment())
			self._has_news(consumer, assignment)  # a request wakes librdkafka's fetcher now, not in 1 s
		return news

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
		"""Wait for the first message (up to poll_timeout, or a moment between idle pauses), then take
		what is already fetched (no extra wait)."""
		first = consumer.poll(min(self.poll_timeout, 0.05) if self.idle_pause else self.poll_timeout)
		if first is None:
			return []
		return [first, *consumer.consume(self.batch_size - 1, 0)] if self.batch_size > 1 else [first]

	def _hand_over(self, consumer: Consumer, msgs: list[Message]) -> None:
		records = [to_record(m) for m in msgs]
		delay = 0.5
		while True:
			try:
				self.submit(records)
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
					"%s: could not hand %d messages (%s) to the queue: %s; retrying in %.1fs, offsets not committed",
					self.name,
					len(records),
					_span(records),
					e,
					delay,
				)
				time.sleep(delay)
				delay = min(delay * 2, 30)
		# at-least-once: offsets are stored only after the queue accepted the job
		for m in msgs:
			consumer.store_offsets(message=m)
		self.uncommitted += len(msgs)
		self.handed_over += len(msgs)
		if self.uncommitted >= self.min_commit_count:
			self._commit(consumer)

	def _commit(self, consumer: Consumer) -> None:
		try:
			consumer.commit(asynchronous=False)
			self.uncommitted = 0
		except KafkaException as e:
			err = e.args[0] if e.args else None
			if isinstance(err, KafkaError) and err.code() == KafkaError._NO_OFFSET:
				self.uncommitted = 0
				return
			log.warning(
				"%s: offset commit failed (%s); will retry with the next batch (duplicates are dropped on intake)",
				self.name,
				e,
			)

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
		if self.uncommitted:
			self._commit(consumer)
		if wanted:
			consumer.subscribe(wanted, on_revoke=self._on_revoke, on_assign=self._on_assign)
			log.info("%s: following topics %s", self.name, ", ".join(wanted))
		else:
			consumer.unsubscribe()
			log.warning("%s: no topics configured in Spine Consumer Config; waiting for some", self.name)
		self.subscribed = wanted

	def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
		log.info("%s: assigned %s", self.name, _partitions(partitions))

	def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
		log.info(
			"%s: partitions %s revoked; committing what was handed over", self.name, _partitions(partitions)
		)
		if self.uncommitted:
			self._commit(consumer)

	def _is_error(self, msg: Message) -> bool:
		err = msg.error()
		if err is None:
			return False
		if err.code() != KafkaError._PARTITION_EOF:
			log.warning("%s: consumer error on %s [%s]: %s", self.name, msg.topic(), msg.partition(), err)
		return True

	def _close(self, consumer: Consumer) -> None:
		try:
			if self.uncommitted:
				self._commit(consumer)
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
