"""The dispatcher's poll → hand-over → commit loop against a real broker, Redis and RQ (no Frappe)."""

from __future__ import annotations

import json
import threading
import time
import uuid
import zlib

import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from spine.config.kafka import split_kafka_conf
from spine.kafka.handover import JobHandOver, json_queue
from spine.kafka.poll_loop import Dispatcher, record_value
from tests.conftest import create_topic
from tests.integration.rq_jobs import RESULTS_KEY

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
	c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
	try:
		return {
			tp.partition: tp.offset
			for tp in c.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
		}
	finally:
		c.close()


def stored(conn) -> list[dict]:
	return [json.loads(x) for x in conn.lrange(RESULTS_KEY, 0, -1)]


def test_batches_become_json_jobs_and_offsets_commit_after_redis(kafka_bootstrap, redis_url):
	conn = redis.Redis.from_url(redis_url)
	topic = create_topic(kafka_bootstrap, 3)
	values = [f'{{"n": {i}}}'.encode() for i in range(500)] + [b"\xff\xfe binary \x00"]
	produce(kafka_bootstrap, topic, values)
	queue = json_queue(f"test:{uuid.uuid4().hex[:6]}", conn)
	handover = JobHandOver(queue, JOB, "site1.local")
	group = f"g-{topic}"
	d = Dispatcher(
		consumer_conf(kafka_bootstrap, group), lambda: [topic], handover, batch_size=100, poll_timeout=0.2
	)
	run_until(d, lambda: d.handed_over >= len(values))
	assert d.handed_over == len(values)

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
	assert {p: o for p, o in committed(kafka_bootstrap, group, topic).items() if p in ends} == ends


def test_a_failing_hand_over_is_retried_and_nothing_is_committed_before(kafka_bootstrap, redis_url):
	topic = create_topic(kafka_bootstrap, 1)
	produce(kafka_bootstrap, topic, [b'{"a": 1}', b'{"a": 2}'])
	group = f"g-{topic}"
	attempts, commits_seen = [], []

	def flaky_submit(records):
		attempts.append(len(records))
		commits_seen.append(committed(kafka_bootstrap, group, topic, 1)[0])
		if len(attempts) < 3:
			raise ConnectionError("redis is down")

	d = Dispatcher(consumer_conf(kafka_bootstrap, group), lambda: [topic], flaky_submit, poll_timeout=0.2)
	run_until(d, lambda: d.handed_over >= 2, timeout=30)
	assert len(attempts) >= 3 and all(n == attempts[0] for n in attempts), "the same batch is offered again"
	assert all(c < 0 for c in commits_seen), "no offset is committed before the hand-over succeeds"
	assert committed(kafka_bootstrap, group, topic, 1)[0] == 2


def test_stop_commits_and_leaves_so_another_member_takes_over_at_once(kafka_bootstrap):
	topic = create_topic(kafka_bootstrap, 3)
	produce(kafka_bootstrap, topic, [b"{}"] * 30)
	group = f"g-{topic}"
	d = Dispatcher(
		consumer_conf(kafka_bootstrap, group), lambda: [topic], lambda recs: None, poll_timeout=0.2
	)
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


def test_subscription_follows_the_configured_topics(kafka_bootstrap, redis_url):
	first, second = create_topic(kafka_bootstrap, 1), create_topic(kafka_bootstrap, 1)
	produce(kafka_bootstrap, first, [b'{"t": 1}'])
	produce(kafka_bootstrap, second, [b'{"t": 2}'])
	wanted = [first]
	seen: list[str] = []
	d = Dispatcher(
		consumer_conf(kafka_bootstrap, f"g-{first}"),
		lambda: list(wanted),
		lambda recs: seen.extend(r["topic"] for r in recs),
		poll_timeout=0.2,
		refresh_seconds=0.2,
	)
	t = threading.Thread(target=d.run, daemon=True)
	t.start()
	deadline = time.monotonic() + 20
	while first not in seen and time.monotonic() < deadline:
		time.sleep(0.05)
	wanted[:] = [first, second]  # an operator adds a row in Spine Consumer Config
	while second not in seen and time.monotonic() < deadline:
		time.sleep(0.05)
	d.stop()
	t.join(20)
	assert seen == [first, second]


def test_a_partitions_next_job_waits_for_its_previous_one(redis_url):
	conn = redis.Redis.from_url(redis_url)
	queue = json_queue(f"test:{uuid.uuid4().hex[:6]}", conn)
	handover = JobHandOver(queue, JOB, "s")

	def rec(p, o):
		return {"topic": "t", "partition": p, "offset": o, "key": None, "value": "{}", "value_b64": False}

	first_ids = handover([rec(0, 0), rec(1, 0)])
	second_ids = handover([rec(0, 1)])
	second = Job.fetch(second_ids[0], connection=conn, serializer=JSONSerializer)
	assert second.get_status() == JobStatus.DEFERRED and second._dependency_ids == [first_ids[0]]
	SimpleWorker([queue], connection=conn, serializer=JSONSerializer).work(burst=True)
	got = [(r["partition"], r["offset"]) for r in stored(conn)]
	assert got.index((0, 0)) < got.index((0, 1)) and len(got) == 3


def test_an_idle_pause_rests_between_polls_and_misses_nothing(kafka_bootstrap):
	"""With ``idle_pause`` (for brokers that answer empty fetches at once) the dispatcher pauses its
	partitions when idle; messages published while it rests are all read, in order per partition."""
	topic = create_topic(kafka_bootstrap, 3)
	got: list[tuple[int, int, bytes]] = []
	rests = 0

	def submit(records):
		got.extend((r["partition"], r["offset"], record_value(r)) for r in records)

	d = Dispatcher(consumer_conf(kafka_bootstrap, f"g-{topic}"), lambda: [topic], submit, idle_pause=0.02)
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
