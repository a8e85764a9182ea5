"""The dispatcher's poll → hand-over → commit loop against a real broker, Redis and RQ (no Frappe)."""

from __future__ import annotations

import json
import threading
import time
import uuid
import zlib

import pytest
import redis
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from spine.config.kafka import split_kafka_conf
from spine.kafka.handover import JobHandOver, json_queue
from spine.kafka.poll_loop import Dispatcher, record_value
from tests.brokers import KIND
from tests.conftest import create_topic
from tests.integration.rq_jobs import RESULTS_KEY, Direct, RedisPositions

JOB = "tests.integration.rq_jobs.store"


def produce(bootstrap, topic, values, keys=None):
	p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
	for i, v in enumerate(values):
		p.produce(topic, value=v, key=(keys[i] if keys else f"k{i % 7}"))
	assert p.flush(20) == 0


def consumer_conf(bootstrap, group):
	return split_kafka_conf(
		{"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "smallest"}
	).consumer


def run_until(dispatcher: Dispatcher, condition, timeout=30):
	t = threading.Thread(target=dispatcher.run, daemon=True)
	t.start()
	deadline = time.monotonic() + timeout
	while not condition() and time.monotonic() < deadline:
		time.sleep(0.05)
	dispatcher.stop()
	t.join(30)
	assert not t.is_alive()
	assert condition(), "condition not reached in time"


def committed(bootstrap, group, topic, partitions=3):
	"""The group's committed offsets (asked again while a fresh Kafka's coordinator is still loading)."""
	c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
	try:
		for attempt in range(20):
			try:
				return {
					tp.partition: tp.offset
					for tp in c.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
				}
			except KafkaException as e:
				if not e.args[0].retriable() or attempt == 19:
					raise
				time.sleep(0.5)
	finally:
		c.close()


def stored(conn) -> list[dict]:
	return [json.loads(x) for x in conn.lrange(RESULTS_KEY, 0, -1)]


def test_batches_become_json_jobs_and_offsets_commit_only_once_stored(kafka_bootstrap, redis_url):
	conn = redis.Redis.from_url(redis_url)
	topic = create_topic(kafka_bootstrap, 3)
	values = [f'{{"n": {i}}}'.encode() for i in range(500)] + [b"\xff\xfe binary \x00"]
	produce(kafka_bootstrap, topic, values)
	queue = json_queue(f"test:{uuid.uuid4().hex[:6]}", conn)
	group = f"g-{topic}"
	handover = JobHandOver(queue, JOB, "site1.local", group)
	d = Dispatcher(
		consumer_conf(kafka_bootstrap, group),
		lambda: [topic],
		handover,
		RedisPositions(group, conn),
		batch_size=100,
		poll_timeout=0.2,
	)
	t = threading.Thread(target=d.run, daemon=True)
	t.start()
	wait_for(lambda: d.handed_over >= len(values))
	time.sleep(1.5)  # several audits: jobs wait in Redis, nothing is stored
	assert all(
		o <= 0 for o in committed(kafka_bootstrap, group, topic).values()
	), "offsets must not be committed past what is stored while the messages are only in Redis"

	# jobs are plain JSON in Redis: no pickles
	job_ids = queue.job_ids
	assert job_ids
	raw = conn.hget(f"rq:job:{job_ids[0]}", "data")
	assert json.loads(zlib.decompress(raw))[0] == JOB  # RQ compresses the serialised call
	SimpleWorker([queue], connection=conn, serializer=JSONSerializer).work(burst=True)
	got = stored(conn)
	assert len(got) == len(values)
	assert {r["site"] for r in got} == {"site1.local"} and {r["queue"] for r in got} == {queue.name}
	assert sorted(record_value(r) for r in got) == sorted(values), "values (binary too) arrive unchanged"
	for p in range(3):  # stored in offset order per partition
		offsets = [r["offset"] for r in got if r["partition"] == p]
		assert offsets == sorted(offsets)
	ends = {
		p: 1 + max(r["offset"] for r in got if r["partition"] == p)
		for p in range(3)
		if any(r["partition"] == p for r in got)
	}
	# the running dispatcher commits what is stored now
	wait_for(lambda: {p: o for p, o in committed(kafka_bootstrap, group, topic).items() if p in ends} == ends)
	d.stop()
	t.join(30)
	assert d.rewinds == 0, "jobs that wait in Redis are not read again"


def wait_for(condition, timeout=30):
	deadline = time.monotonic() + timeout
	while not condition() and time.monotonic() < deadline:
		time.sleep(0.1)
	assert condition(), "condition not reached in time"


def run_dispatcher(kafka_bootstrap, topic, group, handover, positions, **kw):
	d = Dispatcher(
		consumer_conf(kafka_bootstrap, group), lambda: [topic], handover, positions, poll_timeout=0.2, **kw
	)
	t = threading.Thread(target=d.run, daemon=True)
	t.start()
	return d, t


def stop(d, t):
	d.stop()
	t.join(30)
	assert not t.is_alive()


def stored_once(conn, topic, n):
	got = [(r["partition"], r["offset"]) for r in stored(conn) if r["topic"] == topic]
	assert len(got) == len(set(got)), "a message was stored twice"
	assert len(got) == n, f"{len(got)} of {n} messages stored"
	for p in {p for p, _ in got}:
		offsets = [o for part, o in got if part == p]
		assert offsets == sorted(offsets), "stored out of offset order"


def test_jobs_flushed_from_redis_are_read_again_without_a_restart(kafka_bootstrap, redis_url):
	"""FLUSHDB while the workers are stopped: the running dispatcher notices that its jobs vanished
	and reads their messages again from what is stored; every message is stored once."""
	conn = redis.Redis.from_url(redis_url)
	topic = create_topic(kafka_bootstrap, 3)
	produce(kafka_bootstrap, topic, [f'{{"n": {i}}}'.encode() for i in range(300)])
	queue = json_queue(f"test:{uuid.uuid4().hex[:6]}", conn)
	group = f"g-{topic}"
	d, t = run_dispatcher(kafka_bootstrap, topic, group, JobHandOver(queue, JOB, "s", group),
		RedisPositions(group, conn), batch_size=50)  # fmt: skip
	try:
		wait_for(lambda: d.handed_over >= 300)
		positions = conn.hgetall("spine-test:positions")
		conn.flushdb()  # what FLUSHALL, an eviction or a failover to an empty replica does to the jobs
		conn.hset("spine-test:positions", mapping=positions)  # the database (here: a hash) keeps its rows
		wait_for(lambda: d.rewinds >= 1 and d.handed_over >= 600)
		SimpleWorker([queue], connection=conn, serializer=JSONSerializer).work(burst=True)
		stored_once(conn, topic, 300)
		wait_for(lambda: sum(committed(kafka_bootstrap, group, topic).values()) == 300)
	finally:
		stop(d, t)


def test_a_restarted_dispatcher_resumes_from_what_is_stored_not_from_kafka(kafka_bootstrap, redis_url):
	"""Jobs lost while no dispatcher runs: the next one starts each partition at its stored
	position, so messages whose jobs were lost are read again."""
	conn = redis.Redis.from_url(redis_url)
	topic = create_topic(kafka_bootstrap, 2)
	produce(kafka_bootstrap, topic, [b"{}"] * 100)
	queue = json_queue(f"test:{uuid.uuid4().hex[:6]}", conn)
	group = f"g-{topic}"
	positions = RedisPositions(group, conn)
	d, t = run_dispatcher(kafka_bootstrap, topic, group, JobHandOver(queue, JOB, "s", group), positions)
	wait_for(lambda: d.handed_over >= 100)
	stop(d, t)
	saved = conn.hgetall("spine-test:positions")
	conn.flushdb()
	conn.hset("spine-test:positions", mapping=saved)
	# an offset committed past the stored position (as the previous release did) must not win
	c = Consumer(consumer_conf(kafka_bootstrap, group))
	c.commit(offsets=[TopicPartition(topic, p, 50) for p in range(2)], asynchronous=False)
	c.close()
	d, t = run_dispatcher(kafka_bootstrap, topic, group, JobHandOver(queue, JOB, "s", group), positions)
	try:
		wait_for(lambda: d.handed_over >= 100)
		SimpleWorker([queue], connection=conn, serializer=JSONSerializer).work(burst=True)
		stored_once(conn, topic, 100)
	finally:
		stop(d, t)


def test_a_job_taken_off_the_queue_by_a_worker_that_died_is_read_again(kafka_bootstrap, redis_url):
	"""A worker killed between taking a job and registering it (rq 1.14) leaves the job queued but
	nowhere: the dispatcher notices and reads its messages again."""
	conn = redis.Redis.from_url(redis_url)
	topic = create_topic(kafka_bootstrap, 1)
	produce(kafka_bootstrap, topic, [b"{}"] * 20)
	queue = json_queue(f"test:{uuid.uuid4().hex[:6]}", conn)
	group = f"g-{topic}"
	d, t = run_dispatcher(kafka_bootstrap, topic, group, JobHandOver(queue, JOB, "s", group),
		RedisPositions(group, conn))  # fmt: skip
	try:
		wait_for(lambda: d.handed_over >= 20)
		taken = conn.lpop(queue.key)  # the worker took it ... and died before registering it
		assert taken
		wait_for(lambda: d.rewinds >= 1 and d.handed_over >= 40)
		SimpleWorker([queue], connection=conn, serializer=JSONSerializer).work(burst=True)
		stored_once(conn, topic, 20)
	finally:
		stop(d, t)


def test_two_dispatchers_sharing_the_partitions_store_everything_once(kafka_bootstrap, redis_url):
	"""A second dispatcher joins while the first one's jobs wait: partitions move, each resumes
	from what is stored, and after the workers run every message is stored once."""
	conn = redis.Redis.from_url(redis_url)
	topic = create_topic(kafka_bootstrap, 4)
	produce(kafka_bootstrap, topic, [f"{i}".encode() for i in range(400)], keys=[f"k{i}" for i in range(400)])
	queue = json_queue(f"test:{uuid.uuid4().hex[:6]}", conn)
	group = f"g-{topic}"
	a, ta = run_dispatcher(kafka_bootstrap, topic, group, JobHandOver(queue, JOB, "s", group),
		RedisPositions(group, conn), batch_size=20)  # fmt: skip
	try:
		wait_for(lambda: a.handed_over >= 100)
		b, tb = run_dispatcher(kafka_bootstrap, topic, group, JobHandOver(queue, JOB, "s", group),
			RedisPositions(group, conn), batch_size=20)  # fmt: skip
		try:
			wait_for(lambda: len(b.outstanding.next) > 0, timeout=60)  # b was given partitions
			produce(kafka_bootstrap, topic, [b"late"] * 100, keys=[f"k{i}" for i in range(100)])

			# a rebalance makes both read some messages again (handed_over counts them twice), so the
			# workers run until everything is stored, and each message must be there once
			def all_stored() -> bool:
				SimpleWorker([queue], connection=conn, serializer=JSONSerializer).work(burst=True)
				return (
					len({(r["partition"], r["offset"]) for r in stored(conn) if r["topic"] == topic}) >= 500
				)

			wait_for(all_stored, timeout=60)
			stored_once(conn, topic, 500)
			wait_for(lambda: sum(committed(kafka_bootstrap, group, topic, 4).values()) == 500, timeout=60)
		finally:
			stop(b, tb)
	finally:
		stop(a, ta)


def test_a_failing_hand_over_is_retried_and_nothing_is_committed_before(kafka_bootstrap, redis_url):
	topic = create_topic(kafka_bootstrap, 1)
	produce(kafka_bootstrap, topic, [b'{"a": 1}', b'{"a": 2}'])
	group = f"g-{topic}"
	commits_seen = []

	class Flaky(Direct):
		def __call__(self, records, starts):
			commits_seen.append(committed(kafka_bootstrap, group, topic, 1)[0])
			return super().__call__(records, starts)

	handover = Flaky(group=group, fail=2)
	d, t = run_dispatcher(kafka_bootstrap, topic, group, handover, RedisPositions(group))
	try:
		wait_for(lambda: d.handed_over >= 2)
		assert handover.calls >= 3, "the batch was offered again after each failure"
		assert all(
			c <= 0 for c in commits_seen
		), "nothing past the start is committed before the hand-over succeeds"
		wait_for(lambda: committed(kafka_bootstrap, group, topic, 1)[0] == 2)
	finally:
		stop(d, t)
	assert len(handover.seen) == 2, "the batch was taken once, whole"


def test_stop_commits_and_leaves_so_another_member_takes_over_at_once(kafka_bootstrap, redis_url):
	topic = create_topic(kafka_bootstrap, 3)
	produce(kafka_bootstrap, topic, [b"{}"] * 30)
	group = f"g-{topic}"
	d = Dispatcher(
		consumer_conf(kafka_bootstrap, group), lambda: [topic], Direct(group=group), RedisPositions(group),
		poll_timeout=0.2,
	)  # fmt: skip
	run_until(d, lambda: d.handed_over >= 30)
	assert sum(committed(kafka_bootstrap, group, topic).values()) == 30
	# the group was left cleanly: a new member is assigned all partitions quickly
	assigned = []
	c = Consumer({**consumer_conf(kafka_bootstrap, group)})
	c.subscribe([topic], on_assign=lambda c, ps: assigned.extend(p.partition for p in ps))
	deadline = time.monotonic() + 20
	while len(assigned) < 3 and time.monotonic() < deadline:
		c.poll(0.2)
	c.close()
	assert sorted(assigned) == [0, 1, 2]


class _Topics:
	"""The topics of the handed-over records, in order of first appearance, as a list."""

	def __init__(self, records):
		self.records = records

	def __contains__(self, topic):
		return any(r["topic"] == topic for r in self.records)

	def __eq__(self, other):
		return list(dict.fromkeys(r["topic"] for r in self.records)) == other


class _Seen:
	"""(partition, offset, value) of the handed-over records."""

	def __init__(self, records):
		self.records = records

	def __len__(self):
		return len(self.records)

	def __iter__(self):
		return iter([(r["partition"], r["offset"], record_value(r)) for r in self.records])


def _following(bootstrap: str, wanted: list[str], **options) -> tuple[Dispatcher, threading.Thread, _Topics]:
	"""A dispatcher following ``wanted`` (a list the test changes as an operator edits the config),
	running in a thread; returns it, the thread and the topics of what it handed over."""
	group = f"g-{wanted[0]}"
	records: list = []
	d = Dispatcher(consumer_conf(bootstrap, group), lambda: list(wanted), Direct(group=group, seen=records),
		RedisPositions(group), poll_timeout=0.2, **options)  # fmt: skip
	t = threading.Thread(target=d.run, daemon=True)
	t.start()
	return d, t, _Topics(records)


def test_subscription_follows_the_configured_topics(kafka_bootstrap, redis_url):
	first, second = create_topic(kafka_bootstrap, 1), create_topic(kafka_bootstrap, 1)
	produce(kafka_bootstrap, first, [b'{"t": 1}'])
	produce(kafka_bootstrap, second, [b'{"t": 2}'])
	wanted = [first]
	d, t, seen = _following(kafka_bootstrap, wanted, refresh_seconds=0.2)
	deadline = time.monotonic() + 20
	while first not in seen and time.monotonic() < deadline:
		time.sleep(0.05)
	wanted[:] = [first, second]  # an operator adds a row in Spine Consumer Config
	while second not in seen and time.monotonic() < deadline:
		time.sleep(0.05)
	d.stop()
	t.join(20)
	assert seen == [first, second]


def test_a_saved_consumer_config_is_followed_at_the_next_poll_not_the_next_refresh(
	kafka_bootstrap, redis_url
):
	"""The config bell (rung with the site's name after a Spine Consumer Config commit) makes the
	dispatcher read its topics at once: a new topic's message is handed over long before the next
	refresh (60 s here); without the ring the new topic is not followed yet."""
	from spine.kafka.doorbell import Doorbell

	first, second = create_topic(kafka_bootstrap, 1), create_topic(kafka_bootstrap, 1)
	produce(kafka_bootstrap, first, [b'{"t": 1}'])
	produce(kafka_bootstrap, second, [b'{"t": 2}'])
	connection = redis.Redis.from_url(redis_url)
	channel = f"test:spine:config:{first}"
	bell = Doorbell(connection, channel).waiter()
	bell.topics = frozenset({"site-a"})
	wanted = [first]
	d, t, seen = _following(kafka_bootstrap, wanted, refresh_seconds=60, config_bell=bell)
	try:
		deadline = time.monotonic() + 20
		while first not in seen and time.monotonic() < deadline:
			time.sleep(0.05)
		wanted[:] = [first, second]  # an operator adds a row in Spine Consumer Config ...
		time.sleep(1.0)
		assert second not in seen, "not followed before the bell (the refresh is a minute away)"
		Doorbell(connection, channel).ring(["site-b"])  # another site's config: not this dispatcher's
		time.sleep(1.0)
		assert second not in seen, "another site's ring does not concern this dispatcher"
		rung = time.monotonic()
		Doorbell(connection, channel).ring(["site-a"])  # ... and the save's commit rings the bell
		while second not in seen and time.monotonic() < rung + 20:
			time.sleep(0.02)
		assert second in seen, "the new topic is followed after the ring"
		assert time.monotonic() - rung < 10, "within seconds of the ring, not at the next refresh"
	finally:
		d.stop()
		t.join(20)


def test_a_partitions_next_job_waits_for_its_previous_one(redis_url):
	conn = redis.Redis.from_url(redis_url)
	queue = json_queue(f"test:{uuid.uuid4().hex[:6]}", conn)
	handover = JobHandOver(queue, JOB, "s", "g")

	def rec(p, o):
		return {"topic": "t", "partition": p, "offset": o, "key": None, "value": "{}", "value_b64": False}

	first_ids = handover([rec(0, 0), rec(1, 0)], {("t", 0): 0, ("t", 1): 0})
	second_ids = handover([rec(0, 1)], {("t", 0): 1})
	second = Job.fetch(second_ids[("t", 0)], connection=conn, serializer=JSONSerializer)
	assert second.get_status() == JobStatus.DEFERRED and second._dependency_ids == [first_ids[("t", 0)]]
	SimpleWorker([queue], connection=conn, serializer=JSONSerializer).work(burst=True)
	got = [(r["partition"], r["offset"]) for r in stored(conn)]
	assert got.index((0, 0)) < got.index((0, 1)) and len(got) == 3


def test_an_idle_pause_rests_between_polls_and_misses_nothing(kafka_bootstrap, redis_url):
	"""With ``idle_pause`` (for brokers that answer empty fetches at once) the dispatcher pauses its
	partitions when idle; messages published while it rests are all read, in order per partition."""
	topic = create_topic(kafka_bootstrap, 3)
	rests = 0

	records: list = []
	got = _Seen(records)
	group = f"g-{topic}"
	d = Dispatcher(
		consumer_conf(kafka_bootstrap, group), lambda: [topic], Direct(group=group, seen=records),
		RedisPositions(group), idle_pause=0.02,
	)  # fmt: skip
	rest = d._rest

	def counted_rest(consumer):
		nonlocal rests
		rests += 1
		rest(consumer)

	d._rest = counted_rest
	sent = [f"m{i}".encode() for i in range(60)]

	def publish_slowly():
		time.sleep(2)  # the dispatcher is assigned and resting by now
		for i in range(0, len(sent), 6):
			produce(kafka_bootstrap, topic, sent[i : i + 6])
			time.sleep(0.15)

	threading.Thread(target=publish_slowly, daemon=True).start()
	run_until(d, lambda: len(got) >= len(sent), timeout=60)
	assert sorted(v for _, _, v in got) == sorted(sent), "every message read once"
	for p in range(3):
		offsets = [o for part, o, _ in got if part == p]
		assert offsets == sorted(offsets)
	assert rests > 3, "the dispatcher rested between the bursts"


def test_a_stored_position_from_another_life_of_the_topic_is_not_used(kafka_bootstrap, redis_url):
	"""The topic was made again (or the broker is another one): the group has no committed offset
	there, so the stored position is replaced instead of skipping the new topic's first messages."""
	conn = redis.Redis.from_url(redis_url)
	topic = create_topic(kafka_bootstrap, 1)
	group = f"g-{topic}"
	positions = RedisPositions(group, conn)
	positions.begin({(topic, 0): 2})  # left by an earlier topic of this name that had two messages
	produce(kafka_bootstrap, topic, [b"first", b"second"])
	queue = json_queue(f"test:{uuid.uuid4().hex[:6]}", conn)
	d, t = run_dispatcher(kafka_bootstrap, topic, group, JobHandOver(queue, JOB, "s", group), positions)
	try:
		wait_for(lambda: d.handed_over >= 2)
		SimpleWorker([queue], connection=conn, serializer=JSONSerializer).work(burst=True)
		stored_once(conn, topic, 2)
		wait_for(lambda: committed(kafka_bootstrap, group, topic, 1)[0] == 2)
	finally:
		stop(d, t)


@pytest.mark.skipif(
	KIND == "noida",
	reason="the local development broker keeps no topic ids, so an expired offset looks like a new topic",
)
def test_a_stored_position_outlives_the_groups_expired_offsets(kafka_bootstrap, redis_url):
	"""The group's committed offsets are gone (expired after offsets.retention.minutes, or deleted)
	but the topic is the one the position was stored from: the dispatcher resumes from the stored
	position. With auto.offset.reset=latest, following Kafka's reset would skip what arrived meanwhile."""
	from confluent_kafka.admin import AdminClient

	conn = redis.Redis.from_url(redis_url)
	topic = create_topic(kafka_bootstrap, 1)
	group = f"g-{topic}"
	admin = {"bootstrap.servers": kafka_bootstrap}
	conf = {**consumer_conf(kafka_bootstrap, group), "auto.offset.reset": "latest"}
	produce(kafka_bootstrap, topic, [f"before-{i}".encode() for i in range(5)])
	seen: list = []
	first = Dispatcher({**conf, "auto.offset.reset": "earliest"}, lambda: [topic], Direct(group=group, seen=seen),
		RedisPositions(group, conn), poll_timeout=0.2, admin_conf=admin)  # fmt: skip
	run_until(first, lambda: committed(kafka_bootstrap, group, topic, 1)[0] == 5)

	# the group is empty now: deleting it drops its offsets, as their expiry would
	client = AdminClient(admin)
	for future in client.delete_consumer_groups([group], request_timeout=10).values():
		future.result(10)
	assert committed(kafka_bootstrap, group, topic, 1)[0] < 0, "the group's offset is gone"
	produce(kafka_bootstrap, topic, [f"while-away-{i}".encode() for i in range(3)])

	again: list = []
	second = Dispatcher(conf, lambda: [topic], Direct(group=group, seen=again), RedisPositions(group, conn),
		poll_timeout=0.2, admin_conf=admin)  # fmt: skip
	run_until(second, lambda: len(again) >= 3)
	assert [r["offset"] for r in again] == [
		5,
		6,
		7,
	], "resumed at the stored position: nothing skipped, nothing re-read"
	stored_once(conn, topic, 8)


def test_a_position_stored_from_a_topic_made_again_is_replaced(kafka_bootstrap, redis_url):
	"""The position was recorded with another topic id (a topic of the same name, deleted and made
	again): it does not apply, and the new topic is read from its start."""
	conn = redis.Redis.from_url(redis_url)
	topic = create_topic(kafka_bootstrap, 1)
	group = f"g-{topic}"
	positions = RedisPositions(group, conn)
	positions.begin({(topic, 0): 2}, topic_ids={(topic, 0): "an-earlier-topic-id"})
	produce(kafka_bootstrap, topic, [b"first", b"second"])
	seen: list = []
	d = Dispatcher(consumer_conf(kafka_bootstrap, group), lambda: [topic], Direct(group=group, seen=seen),
		positions, poll_timeout=0.2, admin_conf={"bootstrap.servers": kafka_bootstrap})  # fmt: skip
	run_until(d, lambda: len(seen) >= 2)
	assert [r["value"] for r in seen] == ["first", "second"]
	stored_once(conn, topic, 2)


@pytest.mark.skipif(
	KIND == "noida", reason="the local development broker keeps no topic ids and describes no groups"
)
def test_a_topic_made_after_the_subscription_is_assigned_though_the_group_leader_never_noticed_it(
	kafka_bootstrap, redis_url
):
	"""The soak (seed 8) saw a site follow a topic that did not exist yet, and, once it was made, the
	group assign none of its partitions for minutes. A metadata refresh interval of an hour stands in
	for the leader that never noticed: without the late-topic check nothing of the topic is handed over
	(librdkafka rebalances for a new topic only at its leader's next metadata refresh)."""
	from confluent_kafka.admin import AdminClient, NewTopic

	existing = create_topic(kafka_bootstrap, 1)
	late = f"spine-test-late-{uuid.uuid4().hex[:10]}"
	group = f"g-{late}"
	# a static member, as the site's dispatchers are: a rejoin must rebalance all the same
	conf = {**consumer_conf(kafka_bootstrap, group), "topic.metadata.refresh.interval.ms": 3_600_000,
		"group.instance.id": f"{group}-0"}  # fmt: skip
	records: list = []
	d = Dispatcher(conf, lambda: [existing, late], Direct(group=group, seen=records), RedisPositions(group),
		poll_timeout=0.2, refresh_seconds=0.5, admin_conf={"bootstrap.servers": kafka_bootstrap})  # fmt: skip
	t = threading.Thread(target=d.run, daemon=True)
	t.start()
	try:
		produce(kafka_bootstrap, existing, [b'{"t": "existing"}'])
		wait_for(lambda: existing in _Topics(records))
		admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
		for future in admin.create_topics([NewTopic(late, 2)], operation_timeout=10).values():
			future.result(15)
		produce(kafka_bootstrap, late, [b'{"t": "late"}'])
		wait_for(lambda: late in _Topics(records), timeout=60)
		assert [r["topic"] for r in records].count(late) == 1
	finally:
		d.stop()
		t.join(20)
	assert not t.is_alive()
