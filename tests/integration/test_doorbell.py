"""The bench's doorbell on real Redis: a ring reaches the waiters of its topics, and only those."""

from __future__ import annotations

import time

import redis

from spine.kafka.doorbell import Doorbell


def test_a_ring_wakes_the_waiters_of_its_topics_only(redis_url):
	connection = redis.Redis.from_url(redis_url)
	bell = Doorbell(connection, "test:spine:news")
	orders, items = bell.waiter(), bell.waiter()
	orders.topics, items.topics = frozenset({"orders"}), frozenset({"items", "prices"})
	deadline = time.monotonic() + 5
	while connection.pubsub_numsub("test:spine:news")[0][1] < 1 and time.monotonic() < deadline:
		time.sleep(0.01)  # the listener has subscribed

	started = time.monotonic()
	Doorbell(connection, "test:spine:news").ring(["prices", "elsewhere"])  # another process's bell
	assert items.wait(2), "the waiter following prices was woken"
	assert time.monotonic() - started < 0.5
	assert not orders.wait(0.2), "the waiter following orders was not"

	bell.forget(items)
	bell.ring(["items"])
	assert not items.wait(0.2), "a forgotten waiter is not woken"
	Doorbell(connection, "test:spine:news").ring([])  # nothing to say: nothing published


def test_a_bell_nobody_hears_stays_silent_for_a_while_then_rings_again(redis_url, monkeypatch):
	"""On Kafka no dispatcher rests, so the relay's ring after each commit reaches nobody: after one
	ring nobody heard the bell is silent for QUIET_SECONDS (no PUBLISH per commit), then rings again."""
	from spine.kafka import doorbell

	monkeypatch.setattr(doorbell, "QUIET_SECONDS", 0.5)
	connection = redis.Redis.from_url(redis_url)
	relay_bell = Doorbell(connection, "test:spine:quiet")
	relay_bell.ring(["orders"])  # nobody listens
	listening = Doorbell(connection, "test:spine:quiet")
	waiter = listening.waiter()
	waiter.topics = frozenset({"orders"})
	deadline = time.monotonic() + 5
	while connection.pubsub_numsub("test:spine:quiet")[0][1] < 1 and time.monotonic() < deadline:
		time.sleep(0.01)
	relay_bell.ring(["orders"])
	assert not waiter.wait(0.2), "silent right after a ring nobody heard"
	time.sleep(0.4)
	relay_bell.ring(["orders"])
	assert waiter.wait(2), "rings again once the quiet time is over"
