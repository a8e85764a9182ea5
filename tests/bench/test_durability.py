"""Nothing lost when Redis loses its data: consumer offsets follow what MariaDB holds.

Real broker, real MariaDB, and a Redis of the test's own (its own port, with the persistence of
the ``redis_queue.conf`` bench generates) as the bench's ``redis_queue``, so killing or flushing
it hits only what the test started. Each test hands messages over while no jsonworker runs (a
deploy, ``bench update``, or workers behind a backlog), then makes Redis lose the jobs.
"""

from __future__ import annotations

import time

import pytest

from spine import envelope
from tests.bench.helpers import (
	BenchProcess,
	OwnRedis,
	Pipeline,
	bench_redis_queue,
	comments_per_message,
	produce,
	site_kafka,
	spine_message,
	statuses,
	unique,
	wait_for,
)
from tests.brokers import KIND

pytestmark = pytest.mark.slow

HANDLER = "spine.demo.add_comment"  # writes a Comment naming the message: its effect, counted


@pytest.fixture
def own_redis(frappe_site):
	redis = OwnRedis()
	try:
		with bench_redis_queue(redis.url):
			yield redis
	finally:
		redis.stop()


def _handed_over(redis: OwnRedis, group: str, topic: str | None = None) -> int:
	"""Messages of ``topic`` (of every topic if None) handed over so far, by the dispatcher's own
	record in Redis (offsets start at 0)."""
	from spine.kafka.handover import handed_key

	try:
		handed = redis.conn().hgetall(handed_key(group))
	except Exception:
		return -1
	return sum(int(v) for k, v in handed.items() if topic is None or k.decode().rsplit(":", 1)[0] == topic)


def _messages(topic: str, n: int, start: int = 0) -> list:
	envs = [spine_message(topic, "ToDo", f"D-{i % 40}", {"i": i})[0] for i in range(start, start + n)]
	return envs


def _publish(bootstrap: str, topic: str, envs: list) -> None:
	produce(bootstrap, topic, [(e.key, envelope.encode(e), e.headers()) for e in envs])


def _each_handled_once(topic: str, envs: list) -> None:
	assert statuses(topic) == {"Processed": len(envs)}
	counts = comments_per_message([e.message_id for e in envs])
	assert sorted(set(counts.values())) == [1], "each message's effect committed exactly once"


def test_redis_killed_with_jobs_waiting_loses_nothing(consumer_config, own_redis, kafka_bootstrap):
	"""The reported case: 3,000 messages handed over as RQ jobs while no worker runs; Redis is
	SIGKILLed and restarted on its data directory. Before, none ever reached Message Log."""
	from tests.conftest import create_topic

	topic = create_topic(kafka_bootstrap, partitions=3, prefix="redis-kill")
	consumer_config({"topic": topic, "document_type": "ToDo", "event_handler": HANDLER})
	envs = _messages(topic, 3000)
	_publish(kafka_bootstrap, topic, envs)
	queue, group = unique("q"), unique("durable")
	with site_kafka(kafka_bootstrap, **{"group.id": group}):
		dispatcher = BenchProcess("eventdispatcher", "--queue", queue)
		worker = None
		try:
			wait_for(lambda: _handed_over(own_redis, group, topic) == len(envs), 120,
				what=lambda: f"all handed over\n{dispatcher.output()[-3000:]}")  # fmt: skip
			time.sleep(2)  # the dispatcher checks its hand-overs meanwhile: they wait, nothing is stored
			assert statuses(topic) == {}, "no worker runs: nothing can be stored yet"
			gap = _positions(topic)
			assert gap and all(p["stored_up_to"] == 0 == p["committed"] for p in gap), gap
			assert sum(p["handed_over"] for p in gap) == sum(p["end"] for p in gap) == len(envs), gap
			own_redis.kill()
			own_redis.start()
			worker = BenchProcess("jsonworker", "--queue", queue, "--numworkers", "2")
			wait_for(lambda: statuses(topic).get("Processed") == len(envs), 180, interval=1,
				what=lambda: f"all handled: {statuses(topic)}\n{dispatcher.output()[-3000:]}\n"
				f"{worker.output()[-2000:]}")  # fmt: skip
			wait_for(lambda: all(p["stored_up_to"] == p["committed"] == p["end"] for p in _positions(topic)), 30,
				what=lambda: f"offsets committed up to what is stored: {_positions(topic)}")  # fmt: skip
		finally:
			dispatcher.stop()
			if worker:
				worker.stop()
	assert "vanished before storing" in dispatcher.output(), "the dispatcher read the lost messages again"
	_each_handled_once(topic, envs)


def _positions(topic: str) -> list[dict]:
	"""spine-status's partitions of ``topic``: committed, stored up to, handed over, end."""
	from spine.desk.status import consumer_lag

	return [p for p in consumer_lag()["partitions"] if p["topic"] == topic]


def test_redis_flushed_while_the_dispatcher_runs_and_a_second_one_joins(
	consumer_config, own_redis, kafka_bootstrap
):
	"""FLUSHALL with jobs waiting, no restart of the dispatcher; a second dispatcher joins the group
	meanwhile (a rebalance) and more messages arrive. Every message is handled once."""
	from tests.conftest import create_topic

	topic = create_topic(kafka_bootstrap, partitions=4, prefix="redis-flush")
	consumer_config({"topic": topic, "document_type": "ToDo", "event_handler": HANDLER})
	first, later = _messages(topic, 2000), _messages(topic, 500, start=2000)
	_publish(kafka_bootstrap, topic, first)
	queue, group = unique("q"), unique("durable")
	procs = []
	with site_kafka(kafka_bootstrap, **{"group.id": group}):
		try:
			procs.append(BenchProcess("eventdispatcher", "--queue", queue))
			wait_for(lambda: _handed_over(own_redis, group, topic) == len(first), 120,
				what=lambda: f"all handed over\n{procs[0].output()[-3000:]}")  # fmt: skip
			own_redis.conn().flushall()
			procs.append(BenchProcess("eventdispatcher", "--queue", queue))
			wait_for(lambda: "assigned" in procs[1].output(), 90, what=lambda: procs[1].output()[-3000:])
			_publish(kafka_bootstrap, topic, later)
			time.sleep(3)
			procs.append(BenchProcess("jsonworker", "--queue", queue, "--numworkers", "2"))
			wait_for(lambda: statuses(topic).get("Processed") == len(first) + len(later), 180, interval=1,
				what=lambda: f"all handled: {statuses(topic)}\n" + "\n".join(p.output()[-2000:] for p in procs))  # fmt: skip
		finally:
			for p in procs:
				p.stop()
	_each_handled_once(topic, first + later)


def test_a_jsonworker_killed_mid_job_loses_nothing_and_handles_once(
	consumer_config, own_redis, kafka_bootstrap, reset_calls
):
	"""The worker is SIGKILLed while a handler holds its message's effect uncommitted (the handler
	says so in Redis, then waits): the kill lands inside a job, never between two."""
	from spine.demo import CALLS_KEY
	from tests.bench.helpers import redis_cache
	from tests.conftest import create_topic

	topic = create_topic(kafka_bootstrap, partitions=3, prefix="worker-kill")
	consumer_config(
		{"topic": topic, "document_type": "ToDo", "event_handler": "spine.demo.add_comment_then_hold"}
	)
	envs = _messages(topic, 5000)
	held = spine_message(topic, "ToDo", "D-held", {"i": "held", "hold": 120})[0]
	envs.insert(2500, held)
	queue, group = unique("q"), unique("durable")
	with site_kafka(kafka_bootstrap, **{"group.id": group}):
		dispatcher = BenchProcess("eventdispatcher", "--queue", queue)
		worker = BenchProcess("jsonworker", "--queue", queue, "--numworkers", "2")
		try:
			_publish(kafka_bootstrap, topic, envs)
			holding = f"holding {held.message_id}".encode()
			wait_for(lambda: holding in redis_cache().lrange(CALLS_KEY, 0, -1), 180, interval=0.1,
				what=lambda: f"the held message's handler to run\n{worker.output()[-2000:]}")  # fmt: skip
			worker.kill()
			# killed inside the job: the message is still Pending (or not stored yet, when the job stored and
			# handled it in one transaction): its handler's effect was never committed
			status = _status_of(held.message_id)
			assert status in ("Pending", None), f"the kill must land while its handler holds it: {status}"
			worker = BenchProcess("jsonworker", "--queue", queue, "--numworkers", "2")
			wait_for(lambda: statuses(topic).get("Processed") == len(envs), 240, interval=1,
				what=lambda: f"all handled: {statuses(topic)}\n{dispatcher.output()[-2000:]}\n"
				f"{worker.output()[-2000:]}")  # fmt: skip
		finally:
			dispatcher.stop()
			worker.stop()
	_each_handled_once(topic, envs)


def test_a_jsonworker_keeps_working_when_the_queues_redis_restarts_under_a_job(
	consumer_config, own_redis, kafka_bootstrap, reset_calls
):
	"""The queue's Redis is SIGKILLed while a handler runs (found by the soak, seed 11: RQ ended its loop
	on the job's Redis error, the jsonworker exited, and nothing was handled for 13 minutes). The
	same jsonworker takes the next messages once Redis is back, and every message is handled once."""
	from spine.demo import CALLS_KEY
	from tests.bench.helpers import redis_cache
	from tests.conftest import create_topic

	topic = create_topic(kafka_bootstrap, partitions=3, prefix="redis-under-job")
	consumer_config(
		{"topic": topic, "document_type": "ToDo", "event_handler": "spine.demo.add_comment_then_hold"}
	)
	held = spine_message(topic, "ToDo", "D-held", {"i": "held", "hold": 3})[0]
	first, later = [held, *_messages(topic, 200)], _messages(topic, 300, start=200)
	queue, group = unique("q"), unique("durable")
	with site_kafka(kafka_bootstrap, **{"group.id": group}):
		dispatcher = BenchProcess("eventdispatcher", "--queue", queue)
		worker = BenchProcess("jsonworker", "--queue", queue, "--numworkers", "1")
		try:
			_publish(kafka_bootstrap, topic, first)
			holding = f"holding {held.message_id}".encode()
			wait_for(lambda: holding in redis_cache().lrange(CALLS_KEY, 0, -1), 120, interval=0.1,
				what=lambda: f"the held message's handler to run\n{worker.output()[-2000:]}")  # fmt: skip
			own_redis.kill()
			time.sleep(4)  # the handler returns meanwhile: RQ's bookkeeping of its job meets no Redis
			own_redis.start()
			_publish(kafka_bootstrap, topic, later)
			wait_for(lambda: statuses(topic).get("Processed") == len(first) + len(later), 180, interval=1,
				what=lambda: f"all handled: {statuses(topic)}\n{dispatcher.output()[-2000:]}\n"
				f"{worker.output()[-3000:]}")  # fmt: skip
			assert worker.proc.poll() is None, f"the jsonworker is still running\n{worker.output()[-3000:]}"
		finally:
			dispatcher.stop()
			worker.stop()
	_each_handled_once(topic, first + later)


def _status_of(message_id: str) -> str | None:
	import frappe

	frappe.db.rollback()
	return frappe.db.get_value("Message Log", {"message_id": message_id, "direction": "Inbound"}, "status")


@pytest.mark.skipif(
	KIND == "noida",
	reason="the local development broker neither expires group offsets nor keeps topic ids",
)
def test_expired_group_offsets_resume_from_what_message_log_holds(consumer_config, frappe_site):
	"""Apache Kafka drops an empty group's committed offsets after offsets.retention.minutes (7 days by
	default; 1 minute here, checked every second). Messages produced meanwhile are stored and handled
	once the dispatcher is back, none of them skipped and none stored twice, although the block says
	``auto.offset.reset: latest`` (which, followed, would skip them) and the group has no offset."""
	from tests.apache_kafka.broker import KraftCluster
	from tests.conftest import create_topic

	kafka = KraftCluster(1, broker_props={"offsets.retention.minutes": 1,
		"offsets.retention.check.interval.ms": 1000}).start()  # fmt: skip
	try:
		bootstrap = kafka.bootstrap_servers
		topic = create_topic(bootstrap, partitions=2, prefix="expiry")
		consumer_config({"topic": topic, "document_type": "ToDo", "event_handler": HANDLER})
		group = unique("expiry")
		first, later = _messages(topic, 200), _messages(topic, 100, start=200)
		with site_kafka(bootstrap, **{"group.id": group, "auto.offset.reset": "latest"}):
			pipe = Pipeline(unique("q"))
			try:
				wait_for(lambda: "assigned" in pipe.dispatcher.output(), 60, what=pipe.logs)
				_publish(bootstrap, topic, first)
				wait_for(lambda: statuses(topic).get("Processed") == 200, 60, what=pipe.logs)
				# what is stored is committed on the broker too, then the dispatcher stops
				wait_for(lambda: _committed(bootstrap, group, topic) == 200, 30, what="the commits")
			finally:
				pipe.stop()
			# empty now: the broker expires the group's offsets a minute later
			wait_for(lambda: _committed(bootstrap, group, topic) == 0, 150, interval=2,
				what="the broker to expire the group's offsets")  # fmt: skip
			_publish(bootstrap, topic, later)
			pipe = Pipeline(unique("q"))
			try:
				wait_for(lambda: statuses(topic).get("Processed") == 300, 60,
					what=lambda: f"all handled: {statuses(topic)}\n{pipe.logs()}")  # fmt: skip
			finally:
				pipe.stop()
		assert "resuming from stored offset" in pipe.dispatcher.output(), pipe.dispatcher.output()[-2000:]
		_each_handled_once(topic, first + later)
	finally:
		kafka.stop()


def _committed(bootstrap: str, group: str, topic: str) -> int:
	"""How many messages of ``topic`` the group has committed, over both partitions (0: none)."""
	from confluent_kafka import Consumer, KafkaException, TopicPartition

	c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
	try:
		return sum(max(tp.offset, 0) for tp in c.committed([TopicPartition(topic, p) for p in (0, 1)], 10))
	except KafkaException:
		return -1  # the coordinator is still loading: not known yet
	finally:
		c.close()
