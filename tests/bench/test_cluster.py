"""A three-broker Apache Kafka cluster that loses a broker under load: nothing lost, in order, once.

Each test streams 20,000 messages from site A (SPINE_SITE, spine-relay) to site B (SPINE_SITE2,
eventdispatcher + jsonworker, a handler writing one Comment per message) over a cluster of three
KRaft nodes (``default.replication.factor=3``, ``min.insync.replicas=2``, Spine's ``acks=all``),
captured at a steady pace so the fault lands in the middle of the flow. Afterwards: every message
handled once on B (one Comment each), in capture order per document, no gap over 15 s in B's
handling, and no partition left under-replicated.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time

import pytest

from spine.config.topics import INITIAL_SYNC_TOPIC
from tests.bench.helpers import (
	BenchProcess,
	CheckedThread,
	comments_per_message,
	on_site,
	read_topic,
	site_kafka,
	unique,
	wait_for,
)

pytestmark = pytest.mark.slow

MESSAGES = 20_000
KEYS = 200
PER_COMMIT = 250
CAPTURE_SECONDS = 30.0  # the captures are spread over this long
RESUME_SECONDS = 15.0  # the longest pause B's handling may take because of the fault
HANDLER = "spine.demo.add_comment_row"


@pytest.fixture(scope="module")
def cluster():
	from tests.apache_kafka.broker import KraftCluster

	kafka = KraftCluster(3).start()
	try:
		yield kafka
	finally:
		kafka.stop()


@contextlib.contextmanager
def _b_consumes(site_b: str, topic: str, bootstrap: str):
	"""B's kafka block on the cluster and a consumer row for ``topic``; both put back afterwards."""
	import frappe
	from frappe.installer import update_site_config

	from tests.bench.helpers import restore_single

	with on_site(site_b):
		before = frappe.get_site_config().get("kafka")
		saved = frappe.get_single("Spine Consumer Config").as_dict()
		update_site_config(
			"kafka", {"bootstrap.servers": bootstrap, "client.id": site_b, "group.id": unique("cluster-b")}
		)
		doc = frappe.get_single("Spine Consumer Config")
		doc.enabled = 1
		doc.set("configs", [{"topic": topic, "document_type": "ToDo", "event_handler": HANDLER}])
		doc.save(ignore_permissions=True)
	try:
		yield
	finally:
		with on_site(site_b):
			restore_single("Spine Consumer Config", saved, ("enabled",))
			update_site_config("kafka", before if before is not None else "None")


class Flow:
	"""A → B through the cluster: captures on A (in this process), A's relay, B's dispatcher and
	jsonworkers (bench processes)."""

	def __init__(self, site_a: str, site_b: str, topic: str):
		self.site_a, self.site_b, self.topic = site_a, site_b, topic
		self.ids: list[str] = []
		self.keys: list[str] = []
		queue = unique("cluster")
		self.procs = [
			BenchProcess("spine-relay", site=site_a),
			BenchProcess("eventdispatcher", "--queue", queue, site=site_b),
			BenchProcess("jsonworker", "--queue", queue, "--numworkers", "2", site=site_b),
		]

	def wait_ready(self) -> None:
		wait_for(lambda: "publishing committed events" in self.procs[0].output(), 90, what=self.logs)
		wait_for(lambda: "following topics" in self.procs[1].output(), 90, what=self.logs)

	def capture(self) -> None:
		"""MESSAGES events of KEYS documents on A, PER_COMMIT per commit, over CAPTURE_SECONDS."""
		import frappe

		from spine.producer.capture import capture_raw

		commits = MESSAGES // PER_COMMIT
		started = time.monotonic()
		for c in range(commits):
			for _ in range(PER_COMMIT):
				n = len(self.ids)
				key = f"C-{n % KEYS}"
				self.ids.append(capture_raw("ToDo", key, "on_update", self.topic, {"n": n}))
				self.keys.append(f"ToDo:{key}")
			frappe.db.commit()
			time.sleep(max(0.0, started + (c + 1) * CAPTURE_SECONDS / commits - time.monotonic()))

	def handled(self) -> int:
		import frappe

		with on_site(self.site_b):
			frappe.db.rollback()
			return frappe.db.sql(
				"SELECT COUNT(*) FROM `tabMessage Log` WHERE direction = 'Inbound' AND topic = %s AND status = 'Processed'",
				(self.topic,),
			)[0][0]

	def stop(self) -> None:
		for p in self.procs:
			p.stop()

	def logs(self) -> str:
		return "\n".join(f"--- {' '.join(p.args)}\n{p.output()[-2500:]}" for p in self.procs)

	def check(self, bootstrap: str) -> None:
		"""Every message handled once on B, in capture order per document, without a long pause."""
		import frappe

		with on_site(self.site_b):
			counts = comments_per_message(self.ids)
			assert sorted(set(counts.values())) == [1], "each message's effect committed exactly once on B"
			frappe.db.rollback()
			rows = frappe.db.sql(
				"""SELECT message_id, kafka_key, done_at FROM `tabMessage Log`
				WHERE direction = 'Inbound' AND topic = %s ORDER BY kafka_partition, kafka_offset""",
				(self.topic,),
			)
		assert len(rows) == len(self.ids) == len({r[0] for r in rows}), "stored once each"
		for key in set(self.keys):
			captured = [i for i, k in zip(self.ids, self.keys, strict=True) if k == key]
			stored = [r for r in rows if r[1] == key]
			assert [r[0] for r in stored] == captured, f"{key}: B stored it out of capture order"
			done = [r[2] for r in stored]
			assert done == sorted(done), f"{key}: B handled it out of capture order"
		times = sorted(r[2] for r in rows)
		gap = max((b - a).total_seconds() for a, b in itertools.pairwise(times))
		assert gap < RESUME_SECONDS, f"B's handling stopped for {gap:.1f}s"
		print(f"\n{self.topic}: {len(rows)} handled once, longest pause in B's handling {gap:.2f}s, "
			f"first to last handled {(times[-1] - times[0]).total_seconds():.1f}s")  # fmt: skip
		in_kafka = read_topic(bootstrap, self.topic, len(self.ids), exact_wait=1)
		assert len(in_kafka) >= len(self.ids)  # a copy may go twice after a leader change; B drops it
		assert {json.loads(m.value())["Header"]["MessageId"] for m in in_kafka} == set(self.ids)


def _busiest_leader(bootstrap: str, topic: str) -> int:
	"""The broker leading the partition of ``topic`` with the most messages now."""
	from confluent_kafka import Consumer, TopicPartition

	c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("look")})
	try:
		meta = c.list_topics(topic, timeout=10).topics[topic]
		ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions}
		busiest = max(ends, key=ends.get)
		return meta.partitions[busiest].leader
	finally:
		c.close()


def _all_in_sync(bootstrap: str) -> bool:
	from confluent_kafka.admin import AdminClient

	meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
	return all(
		p.leader >= 0 and len(p.isrs) == len(p.replicas)
		for t in meta.topics.values()
		for p in t.partitions.values()
	)


def _run(cluster, frappe_site, second_site, fault) -> None:
	"""The flow with ``fault(cluster, topic)`` run in a thread once a third of it was captured."""
	from tests.conftest import create_topic

	topic = create_topic(cluster.bootstrap_servers, partitions=3, prefix="cluster")
	with _b_consumes(second_site, topic, cluster.bootstrap_servers), site_kafka(cluster.bootstrap_servers):
		flow = Flow(frappe_site, second_site, topic)
		try:
			flow.wait_ready()
			worker = CheckedThread(
				lambda: (time.sleep(CAPTURE_SECONDS / 3), fault(cluster, topic)), "the fault"
			)
			worker.start()
			flow.capture()
			worker.join(240)  # raises what the fault raised
			wait_for(lambda: flow.handled() == MESSAGES, 300, interval=1,
				what=lambda: f"all handled on B ({flow.handled()} of {MESSAGES})\n{flow.logs()}")  # fmt: skip
		finally:
			flow.stop()
		flow.check(cluster.bootstrap_servers)
	wait_for(lambda: _all_in_sync(cluster.bootstrap_servers), 120, interval=2,
		what="every partition back in sync after the fault")  # fmt: skip
	own = _replicas_of_spines_own_topics(cluster.bootstrap_servers)
	assert INITIAL_SYNC_TOPIC in own, f"the dispatcher made {INITIAL_SYNC_TOPIC} on the cluster: {own}"
	assert all(r == {3} for r in own.values()), f"Spine's own topics follow the cluster's replication: {own}"


def _replicas_of_spines_own_topics(bootstrap: str) -> dict[str, set[int]]:
	"""{topic: {replica counts of its partitions}} for every topic named ``spine.*`` on the cluster."""
	from confluent_kafka.admin import AdminClient

	meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
	return {
		name: {len(p.replicas) for p in t.partitions.values()}
		for name, t in meta.topics.items()
		if name.startswith("spine.")
	}


def test_the_busiest_partitions_leader_killed_mid_flow(cluster, frappe_site, second_site):
	killed = []

	def kill_leader(c, topic):
		leader = _busiest_leader(c.bootstrap_servers, topic)
		c.kill_node(leader)
		killed.append(leader)
		time.sleep(20)
		c.start_node(leader)  # back, so the cluster is whole for the next test

	_run(cluster, frappe_site, second_site, kill_leader)
	assert killed, "a leader was killed"


def test_a_rolling_restart_of_all_three_brokers_under_load(cluster, frappe_site, second_site):
	def roll(c, topic):
		for node in (1, 2, 3):
			c.stop_node(node)
			c.start_node(node)
			wait_for(
				lambda: _all_in_sync(c.bootstrap_servers), 120, interval=1, what=f"node {node} back in sync"
			)

	_run(cluster, frappe_site, second_site, roll)


def test_a_broker_stopped_for_a_minute_and_brought_back(cluster, frappe_site, second_site):
	def away(c, topic):
		c.stop_node(2)
		time.sleep(60)
		c.start_node(2)

	_run(cluster, frappe_site, second_site, away)
