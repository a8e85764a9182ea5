"""The dispatcher's idle pause against a consumer that needs time unpaused before it can fetch.

librdkafka looks up where to start reading a newly assigned partition (committed offset, then the
reset policy) in the background; pausing the partition meanwhile starts that lookup again. A
dispatcher that paused at every empty poll could then keep such a partition from ever being read
(seen with 100,000 messages waiting and nothing stored). A plain fake stands for that behaviour.
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import TopicPartition

from spine.kafka import poll_loop

LOOKUP_SECONDS = 0.2  # how long the fake must stay unpaused before its first message can be fetched


class FakeMessage:
	def error(self):
		return None

	def topic(self):
		return "t"

	def partition(self):
		return 0

	def offset(self):
		return 0

	def key(self):
		return b"k"

	def value(self):
		return b"v"

	def headers(self):
		return None

	def timestamp(self):
		return (0, 0)


class SlowStartConsumer:
	"""One partition with one message that is fetched only after LOOKUP_SECONDS unpaused in a row."""

	def __init__(self, conf):
		self.unpaused_since: float | None = time.monotonic()
		self.delivered = False
		self.pauses = 0

	def subscribe(self, topics, on_assign=None, on_revoke=None):
		pass

	def unsubscribe(self):
		pass

	def assignment(self):
		return [TopicPartition("t", 0)]

	def pause(self, partitions):
		self.pauses += 1
		self.unpaused_since = None  # the lookup starts again after resume

	def resume(self, partitions):
		self.unpaused_since = time.monotonic()

	def poll(self, timeout):
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			ready = (
				self.unpaused_since is not None and time.monotonic() - self.unpaused_since >= LOOKUP_SECONDS
			)
			if ready and not self.delivered:
				self.delivered = True
				return FakeMessage()
			time.sleep(0.002)
		return None

	def consume(self, num_messages, timeout):
		return []

	def offsets_for_times(self, partitions, timeout):
		return [TopicPartition(p.topic, p.partition, 0 if self.delivered else 1) for p in partitions]

	def position(self, partitions):
		return [TopicPartition(p.topic, p.partition, -1001) for p in partitions]

	def committed(self, partitions, timeout):
		return [TopicPartition(p.topic, p.partition, -1001) for p in partitions]

	def commit(self, offsets=None, asynchronous=False):
		pass

	def close(self):
		pass


class StoredAtOnce:
	"""A hand-over and stored positions in one: what is handed over is stored."""

	def __init__(self):
		self.records: list = []
		self.at: dict = {}

	def __call__(self, records, starts):
		self.records.extend(records)
		for r in records:
			self.at[(r["topic"], r["partition"])] = r["offset"] + 1
		return {tp: "job" for tp in self.at}

	def vanished(self, job_id):
		return True

	def busy(self):
		return False

	def forget(self, tp):
		pass

	def stored(self, partitions):
		return {tp: self.at[tp] for tp in partitions if tp in self.at}

	def begin(self, starts):
		pass


def test_news_is_fetched_even_when_the_start_lookup_outlasts_a_poll(monkeypatch):
	monkeypatch.setattr(poll_loop, "Consumer", SlowStartConsumer)
	got = StoredAtOnce()
	d = poll_loop.Dispatcher({}, lambda: ["t"], got, got, idle_pause=0.01, refresh_seconds=2.0)
	runner = threading.Thread(target=d.run, daemon=True)
	runner.start()
	deadline = time.monotonic() + 5
	while not got.records and time.monotonic() < deadline:
		time.sleep(0.01)
	d.stopping = True
	runner.join(5)
	assert got.records, f"the waiting message was never fetched ({d._consumer.pauses} pauses)"


def test_an_idle_partition_with_nothing_new_is_paused(monkeypatch):
	"""Caught up (nothing newer than what was read): the dispatcher rests instead of polling, and its
	partitions stay paused between rests."""
	monkeypatch.setattr(poll_loop, "Consumer", SlowStartConsumer)
	done = StoredAtOnce()
	d = poll_loop.Dispatcher({}, lambda: ["t"], done, done, idle_pause=0.01, refresh_seconds=0.2)
	runner = threading.Thread(target=d.run, daemon=True)
	runner.start()
	time.sleep(1.5)
	paused_now, pauses = d._consumer.unpaused_since is None, d._consumer.pauses
	time.sleep(0.6)  # three more rests (refresh_seconds 0.2): it stays paused, it is not paused again
	still_paused, pauses_later = d._consumer.unpaused_since is None, d._consumer.pauses
	d.stopping = True
	runner.join(5)
	assert d.handed_over == 1 and paused_now and still_paused
	assert pauses_later == pauses, "the partition stays paused between rests instead of fetching in between"


class CountingConsumer(SlowStartConsumer):
	"""Caught up from the start; counts the looks for news (one ListOffsets request each)."""

	def __init__(self, conf):
		super().__init__(conf)
		self.delivered = True
		self.looks: list[float] = []

	def offsets_for_times(self, partitions, timeout):
		self.looks.append(time.monotonic())
		return super().offsets_for_times(partitions, timeout)


def test_an_idle_dispatcher_looks_less_and_less_often_and_at_once_when_the_doorbell_rings(monkeypatch):
	"""Idle, the looks for news thin out (10 ms, 20 ms, ... up to IDLE_PAUSE_MAX_SECONDS) instead of a
	hundred a second; a ring of the doorbell for a followed topic makes it look at once."""
	from spine.kafka.doorbell import Waiter

	monkeypatch.setattr(poll_loop, "Consumer", CountingConsumer)
	done = StoredAtOnce()
	bell = Waiter()
	d = poll_loop.Dispatcher(
		{}, lambda: ["t"], done, done, idle_pause=0.01, refresh_seconds=60, doorbell=bell
	)
	runner = threading.Thread(target=d.run, daemon=True)
	runner.start()
	try:
		time.sleep(3.0)
		looks = d._consumer.looks
		assert 0 < len(looks) < 20, f"{len(looks)} looks in 3 s of idleness"
		assert bell.topics == frozenset({"t"}), "the waiter follows the subscribed topics"
		before = len(looks)
		rung_at = time.monotonic()
		bell.ring()
		deadline = time.monotonic() + 1
		while len(looks) == before and time.monotonic() < deadline:
			time.sleep(0.002)
		assert len(looks) > before and looks[before] - rung_at < 0.1, "a ring is answered with a look at once"
	finally:
		d.stopping = True
		runner.join(5)
