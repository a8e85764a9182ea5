"""One soak: two sites of a real bench, Spine's bench-wide processes, Apache Kafka (one broker or a
three-broker cluster) and a Redis of its own for the queue; traffic both ways, the seeded faults, a
drain, the end check, and everything put back as it was.

Site A is SPINE_SITE, site B SPINE_SITE2 (both with Spine installed); MariaDB's root account (as the
bench tier's, ``SPINE_DB_ROOT_USER`` / ``SPINE_DB_ROOT_PASSWORD``) KILLs the sites' connections.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tests.soak import check, report, schedule
from tests.soak.faults import (
	Chaos,
	Killer,
	Processes,
	consumer_rows,
	producer_rows,
	routes_of,
	save_producer_rows,
)
from tests.soak.journal import ConfigSave, Journal
from tests.soak.traffic import INVOICE, MASTER, Requester, Traffic

DRAIN_SECONDS = 240  # after the traffic stops, everything is published, stored and handled within this


class Contexts:
	"""Both sites' Frappe state in one thread (one ``contextvars.Context`` per site, as a jsonworker
	keeps them), each with its own connection; ``run(tag, fn)`` calls ``fn`` on that site."""

	def __init__(self, sites: dict[str, str], sites_path: str, spared: set[int]):
		from spine.consumer.site_contexts import SiteContexts

		self.sites, self.contexts = sites, SiteContexts()
		for site in sites.values():
			self.contexts.run(site, _connect, site, sites_path, spared)

	def run(self, tag: str, fn: Callable[[], Any]) -> Any:
		return self.contexts.run(self.sites[tag], fn)

	def close(self) -> None:
		self.contexts.close_all()


def _connect(site: str, sites_path: str, spared: set[int]) -> None:
	import frappe

	frappe.init(site=site, sites_path=sites_path)
	frappe.connect()
	frappe.set_user("Administrator")
	spared.add(frappe.db.sql("SELECT CONNECTION_ID()")[0][0])


class Probes:
	"""Messages from a foreign producer that show whether a config save is in force: sent to one
	site's topic after the save, handled or not by the end."""

	def __init__(self, bootstrap: str):
		from confluent_kafka import Producer
		from confluent_kafka.admin import AdminClient

		self.bootstrap = bootstrap
		self.admin = AdminClient({"bootstrap.servers": bootstrap})
		self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
		self.sent: list[dict] = []
		self.lock = threading.Lock()

	def create_topics(self, topics: list[str], partitions: int = 3) -> None:
		from confluent_kafka.admin import NewTopic

		futures = self.admin.create_topics([NewTopic(t, partitions) for t in topics], operation_timeout=30)
		for topic, future in futures.items():
			with contextlib.suppress(Exception):  # made already
				future.result(60)
			del topic

	def send(self, tag: str, topic: str, doctype: str, expect: bool, at) -> None:
		"""Produce a probe for ``tag`` on ``topic`` (sent ``at``, the site's clock); ``expect``: whether it must be handled."""
		from spine import envelope

		name = f"soak-probe-{uuid.uuid4().hex[:10]}"
		payload = {"name": name}
		if doctype == MASTER:
			payload.update(code=name, title="probe", price=1)
		env = envelope.build(doctype=doctype, docname=name, event="on_update", topic=topic, payload=payload,
			origin="soak-probe", origin_site="soak.probe")  # fmt: skip
		done: list = []
		self.producer.produce(topic, envelope.encode(env), env.key, headers=env.headers(),
			on_delivery=lambda err, msg: done.append(err))  # fmt: skip
		self.producer.flush(60)
		with self.lock:
			self.sent.append({"tag": tag, "topic": topic, "doctype": doctype, "name": name,
				"message_id": env.message_id, "expect": expect, "at": at, "delivered": done == [None]})  # fmt: skip


class ChaosThread(threading.Thread):
	"""Runs faults at their moments (seconds after ``t0``); an exception ends it and is kept."""

	def __init__(self, name: str, faults: list[schedule.Fault], t0: float, make: Callable[[], Chaos]):
		super().__init__(name=name, daemon=True)
		self.faults, self.t0, self.make = faults, t0, make
		self.error: str | None = None
		self.stop = threading.Event()

	def run(self) -> None:
		import traceback

		try:
			chaos = self.make()
			for fault in self.faults:
				if self.stop.wait(max(0.0, self.t0 + fault.at - time.monotonic())):
					return
				print(
					f"  {time.monotonic() - self.t0:7.1f}s  {fault.kind} ({fault.site}, {fault.seconds}s)",
					flush=True,
				)
				chaos(fault)
		except BaseException:
			self.error = traceback.format_exc()

	def check(self) -> None:
		if self.error:
			raise AssertionError(f"{self.name} failed:\n{self.error}")


def soak(
	seed: int, minutes: float, nodes: int = 1, out: str | None = None, spare: Iterable[int] = ()
) -> dict[str, Any]:
	"""Run the soak; returns the report (also written to ``out`` as JSON). The database connections
	``spare`` (ids; the caller's own) are not among those it KILLs."""
	import frappe

	from tests.apache_kafka.broker import KraftCluster
	from tests.bench.helpers import OwnRedis

	plan = schedule.draw(seed, minutes)
	bench = os.environ["SPINE_BENCH"]
	sites = {"a": os.environ["SPINE_SITE"], "b": os.environ.get("SPINE_SITE2") or ""}
	if not sites["b"] or sites["b"] == sites["a"]:
		raise SystemExit(
			"the soak needs two sites: set SPINE_SITE2 to a second site of the bench with Spine installed"
		)
	sites_path = os.path.join(bench, "sites")
	os.chdir(sites_path)
	run_id = f"soak-{seed}-{uuid.uuid4().hex[:4]}"
	print(
		f"soak {run_id}: seed {seed}, {minutes} min, {nodes} broker(s), sites {sites['a']} and {sites['b']}"
	)
	print(f"schedule: {plan.counts()}", flush=True)
	journal, spared = Journal(), set(spare)
	# the bench's queue before any site connects: a killed run's own Redis is gone, and a connection
	# made to it would stay (Frappe keeps one per process)
	_undo_the_queue_of_a_killed_run(sites_path)
	contexts = Contexts(sites, sites_path, spared)
	_undo_a_killed_run(contexts, sites, sites_path)
	cluster = KraftCluster(nodes, heap_mb=512 if nodes > 1 else None).start()
	redis = OwnRedis()
	saved = {tag: contexts.run(tag, _saved_state) for tag in sites}
	saved_queue = contexts.run("a", lambda: __import__("frappe").get_conf().get("redis_queue"))
	# written before anything is changed, removed once restored: a soak killed midway (SIGKILL, a session
	# that ended) is undone by the next one, which finds this file
	leftover = Path(sites_path) / LEFTOVER
	leftover.write_text(json.dumps({"run": run_id, "saved": saved, "redis_queue": saved_queue}, default=str))
	processes: Processes | None = None
	threads: list = []
	started = None
	try:
		with contextlib.ExitStack() as stack:
			before_queue = contexts.run("a", lambda: _queue_redis(redis.url))
			stack.callback(lambda: contexts.run("a", lambda: _queue_redis(before_queue)))
			topics = _topics(run_id, sites)
			probes = Probes(cluster.bootstrap_servers)
			probes.create_topics(sorted(topics["all"]))
			for tag in sites:
				contexts.run(
					tag, lambda tag=tag: _configure(tag, topics, cluster.bootstrap_servers, run_id, journal)
				)
			for tag in sites:
				contexts.run(tag, lambda tag=tag: _trust_the_other(tag, sites, contexts))
			started = contexts.run("a", _now)
			print(f"  sites configured ({time.strftime('%H:%M:%S')}); starting the processes", flush=True)
			processes = Processes(run_id)
			processes.wait_ready()
			print(f"  processes ready ({time.strftime('%H:%M:%S')}); traffic starts", flush=True)
			time.sleep(3)  # the dispatchers' first assignment
			users = [contexts.run(tag, lambda: frappe.conf.db_user or frappe.conf.db_name) for tag in sites]
			host, port = contexts.run("a", lambda: (frappe.conf.db_host, frappe.conf.db_port))
			killer = Killer(users, spared, host, port)
			stop = threading.Event()
			rng = random.Random(seed)
			threads = [
				Traffic(
					"a", sites["a"], sites_path, journal, rng.randrange(1 << 30), stop, spared, prefix=run_id
				),
				Traffic(
					"b", sites["b"], sites_path, journal, rng.randrange(1 << 30), stop, spared, prefix=run_id
				),
				Requester("a", sites["a"], sites_path, topics["ask"]["b"], journal, stop, spared),
				Requester("b", sites["b"], sites_path, topics["ask"]["a"], journal, stop, spared),
			]
			t0 = time.monotonic()
			for t in threads:
				t.start()

			def chaos_for(name: str) -> Chaos:
				own = Contexts(sites, sites_path, spared)
				return Chaos(sites, own.run, journal, processes, cluster, redis, killer, topics, probes)

			outages = [f for f in plan.faults if f.kind in schedule.OUTAGES]
			saves = [f for f in plan.faults if f.kind in schedule.CONFIG_SAVES]
			chaos_threads = [
				ChaosThread("outages", outages, t0, lambda: chaos_for("outages")),
				ChaosThread("config saves", saves, t0, lambda: chaos_for("saves")),
			]
			for t in chaos_threads:
				t.start()
			# traffic flows for the soak's length, and on until every fault of the schedule is done (a fault
			# that takes longer than planned, a broker slow to start, moves the later ones) and then a while
			done_at = None
			while True:
				time.sleep(1)
				for t in threads + chaos_threads:
					if not t.is_alive():
						t.check()
				if done_at is None and not any(t.is_alive() for t in chaos_threads):
					done_at = time.monotonic()
				if (
					done_at is not None
					and time.monotonic() - t0 >= plan.traffic_seconds
					and (time.monotonic() - done_at >= schedule.COOL_DOWN_SECONDS)
				):
					break
			stop.set()
			for t in chaos_threads:
				t.join(10)
				t.check()
			for t in threads:
				t.join(60)
				t.check()
				assert not t.is_alive(), f"{t.name} did not end"
			print(f"traffic ended after {time.monotonic() - t0:.0f}s; draining", flush=True)
			drained = _drain(contexts, journal, topics, probes)
			print(
				f"drained in {drained:.0f}s"
				if drained is not None
				else f"not drained within {DRAIN_SECONDS}s",
				flush=True,
			)
			processes.stop()
			facts = _gather(contexts, journal, topics, probes, cluster.bootstrap_servers, started)
			if (
				out
			):  # what the check reads, kept so a report can be made again: python -m tests.soak --again FILE
				with open(out + ".pickle", "wb") as f:
					pickle.dump((journal.txns, journal.configs, journal.faults, journal.requests, facts), f)
			outcome = check.evaluate(journal, facts)
			if drained is None:
				outcome.problems.append(
					check.Problem(
						"stuck",
						None,
						f"not everything was handled within {DRAIN_SECONDS}s of the traffic's end",
					)
				)
			summary = report.summarise(journal, outcome)
			summary.update(
				seed=seed, minutes=minutes, brokers=cluster.describe(), sites=sites, run=run_id,
				drained_seconds=drained, schedule=[f.as_dict() for f in plan.faults],
				faults_done=[{"kind": f.kind, "site": f.site, "started": f.started.isoformat(),
					"ended": f.ended.isoformat(), "note": f.note, "error": f.error} for f in journal.faults],
				passed=False,
			)  # fmt: skip
			summary["passed"] = report.passed(summary)
			if not summary["passed"]:
				summary["process logs"] = processes.tails()
	finally:
		if processes is not None:
			processes.stop()
		for tag in sites:
			with contextlib.suppress(Exception):
				contexts.run(tag, lambda tag=tag: _restore(saved[tag], run_id))
		leftover.unlink(missing_ok=True)
		contexts.close()
		redis.stop()
		cluster.stop()
	if processes is not None and summary.get("passed"):
		processes.remove_logs()
	elif processes is not None:
		from tests.bench.helpers import logs_dir

		print(f"the processes' output is kept in {logs_dir()}")
	print(report.table(summary))
	print(
		f"{'PASSED' if summary['passed'] else 'FAILED'}: seed {seed} (replay: benchmarks/run.sh soak --seed {seed} --minutes {minutes}{' --nodes 3' if nodes > 1 else ''})"
	)
	if out:
		with open(out, "w") as f:
			json.dump(summary, f, indent=1, default=str)
		print(f"written: {out}")
	return summary


def _topics(run_id: str, sites: dict[str, str]) -> dict[str, Any]:
	tags = list(sites)
	topics: dict[str, Any] = {
		"prefix": run_id,
		"sites": sites,
		"todo": {t: f"{run_id}-todo-{t}" for t in tags},
		"sync": {t: f"{run_id}-sync-{t}" for t in tags},
		"ask": {t: f"{run_id}-ask-{t}" for t in tags},  # requests site t answers
		"flips": {t: [] for t in tags},
		"decoys_ever": {t: [] for t in tags},
	}
	topics["all"] = {*topics["todo"].values(), *topics["sync"].values(), *topics["ask"].values()}
	return topics


def _now():
	from frappe.utils import now_datetime

	return now_datetime()


LEFTOVER = ".spine-soak-restore.json"


def _undo_a_killed_run(contexts, sites: dict[str, str], sites_path: str) -> None:
	"""What a soak that was killed midway left (its config rows, sync rules, kafka blocks, the bench's
	``redis_queue``) put back as it was before that run, from the file it wrote at its start."""
	leftover = Path(sites_path) / LEFTOVER
	if not leftover.exists():
		return
	state = json.loads(leftover.read_text())
	print(f"  undoing what the killed run {state['run']} left on the sites (from {leftover})", flush=True)
	for tag in sites:
		contexts.run(tag, lambda tag=tag: _restore(state["saved"][tag], state["run"]))
	leftover.unlink()


def _undo_the_queue_of_a_killed_run(sites_path: str) -> None:
	"""The bench's ``redis_queue`` as it was before a soak that was killed midway (see ``LEFTOVER``)."""
	from frappe.installer import update_site_config

	leftover = Path(sites_path) / LEFTOVER
	if leftover.exists():
		url = json.loads(leftover.read_text())["redis_queue"]
		path = os.path.join(sites_path, "common_site_config.json")
		update_site_config("redis_queue", url, site_config_path=path)


def _queue_redis(url: str | None) -> str | None:
	"""Point the bench's ``redis_queue`` (common_site_config.json) at ``url``; returns what it was."""
	import frappe
	from frappe.installer import update_site_config

	path = os.path.join(frappe.local.sites_path, "common_site_config.json")
	before = frappe.get_conf().get("redis_queue")
	update_site_config("redis_queue", url, site_config_path=path)
	return before


def _saved_state() -> dict[str, Any]:
	import frappe

	return {
		"producer": frappe.get_single("Spine Producer Config").as_dict(),
		"consumer": frappe.get_single("Spine Consumer Config").as_dict(),
		"kafka": frappe.get_site_config().get("kafka"),
	}


def _configure(tag: str, topics: dict[str, Any], bootstrap: str, run_id: str, journal: Journal) -> None:
	"""The site's kafka block, DocTypes, producer and consumer config and sync rules for the soak."""
	import frappe
	from frappe.installer import update_site_config
	from frappe.utils import now_datetime

	from tests.bench.test_sync import make_doctypes

	other = "b" if tag == "a" else "a"
	update_site_config("kafka", {"bootstrap.servers": bootstrap, "client.id": f"{run_id}-{tag}",
		"group.id": f"{run_id}-{tag}", "session.timeout.ms": 10_000})  # fmt: skip
	update_site_config("maintenance_mode", 0)
	frappe.local.conf = frappe._dict(frappe.get_site_config())
	make_doctypes()
	rows = producer_rows(topics, tag, None, None)
	version = save_producer_rows(rows)
	journal.add(
		ConfigSave(tag, "Spine Producer Config", now_datetime(), str(version), routes_of(rows), "start")
	)
	consumer = frappe.get_single("Spine Consumer Config")
	consumer.enabled, consumer.max_attempts = 1, 10
	consumer.retry_backoff_seconds, consumer.retry_backoff_max_seconds = 1, 10
	consumer.set("configs", consumer_rows(topics, tag, []))
	consumer.save(ignore_permissions=True)
	for doctype, extra in ((MASTER, {"on_delete": "Delete here"}), (INVOICE, {"follow_submit": 1})):
		frappe.get_doc({"doctype": "Spine Sync Rule", "title": f"{run_id} {doctype}", "topic": topics["sync"][other],
			"source_doctype": doctype, "create_missing": 1, "require_signature": 1,
			"accept_from": topics["sites"][other], **extra}).insert(ignore_permissions=True)  # fmt: skip
	frappe.db.commit()


def _trust_the_other(tag: str, sites: dict[str, str], contexts: Contexts) -> None:
	"""This site trusts the other's signing key (as a System Manager would, by its fingerprint)."""
	import frappe

	from spine.producer import signing_key

	other = "b" if tag == "a" else "a"
	key = contexts.run(
		other,
		lambda: (signing_key.ensure_key(), frappe.db.commit(), frappe.get_single("Spine Settings").as_dict())[
			2
		],
	)
	frappe.db.delete("Spine Trusted Site", {"site": sites[other]})
	frappe.get_doc({"doctype": "Spine Trusted Site", "site": sites[other], "key_id": key["signing_key_id"],
		"public_key": key["signing_public_key"], "status": "Trusted"}).insert(ignore_permissions=True)  # fmt: skip
	frappe.db.commit()


def _restore(saved: dict[str, Any], run_id: str) -> None:
	import frappe
	from frappe.installer import update_site_config

	from tests.bench.helpers import restore_single

	frappe.db.rollback()
	restore_single("Spine Producer Config", saved["producer"], ("enabled",))
	restore_single("Spine Consumer Config", saved["consumer"],
		("enabled", "max_attempts", "retry_backoff_seconds", "retry_backoff_max_seconds"))  # fmt: skip
	for name in frappe.get_all("Spine Sync Rule", {"topic": ("like", f"{run_id}%")}, pluck="name"):
		frappe.delete_doc("Spine Sync Rule", name, ignore_permissions=True, force=True)
	frappe.db.commit()
	update_site_config("kafka", saved["kafka"] if saved["kafka"] is not None else "None")
	update_site_config("maintenance_mode", 0)


def _names(journal: Journal, tag: str) -> dict[str, set[str]]:
	names: dict[str, set[str]] = {}
	for txn in journal.txns:
		if txn.site == tag:
			for _, doctype, name in txn.ops:
				names.setdefault(doctype, set()).add(name)
	return names


def _drain(contexts: Contexts, journal: Journal, topics: dict[str, Any], probes: Probes) -> float | None:
	"""Seconds until nothing of the soak waits on either site (None: still waiting after DRAIN_SECONDS)."""
	started = time.monotonic()
	soak_topics = tuple(topics["all"])

	def waiting() -> int:
		import frappe

		frappe.db.rollback()
		out = frappe.db.sql(
			"SELECT COUNT(*) FROM `tabMessage Log` WHERE direction = 'Outbound' AND status = 'Pending' AND topic IN %s",
			(soak_topics,),
		)[0][0]
		inbound = frappe.db.sql(
			"SELECT COUNT(*) FROM `tabMessage Log` WHERE direction = 'Inbound' AND status IN ('Pending', 'Error', 'Waiting') AND topic IN %s",
			(soak_topics,),
		)[0][0]
		return out + inbound

	quiet_since = None
	while time.monotonic() - started < DRAIN_SECONDS:
		if sum(contexts.run(tag, waiting) for tag in ("a", "b")) == 0:
			quiet_since = quiet_since or time.monotonic()
			if time.monotonic() - quiet_since > 10:  # and stays so while the last messages arrive
				return quiet_since - started
		else:
			quiet_since = None
		time.sleep(1)
	return None


def _gather(
	contexts: Contexts, journal: Journal, topics: dict[str, Any], probes: Probes, bootstrap: str, since
) -> check.Facts:
	facts = check.Facts()
	soak_topics = sorted(topics["all"])
	for tag in ("a", "b"):
		other = "b" if tag == "a" else "a"
		names = _names(journal, tag)
		facts.outbound[tag] = contexts.run(tag, lambda names=names: _outbound(names))
		facts.inbound[tag] = contexts.run(tag, lambda: _inbound(soak_topics))
		facts.effects[tag] = contexts.run(tag, lambda: _effects(since))
		facts.handler_topics[tag] = {topics["todo"][other], *(t for t, _ in topics["flips"][other])}
		facts.sync_topics[tag] = {topics["sync"][other]}
	for tag in ("a", "b"):
		other = "b" if tag == "a" else "a"
		names = _names(journal, tag)
		keys = [(dt, n) for dt in (MASTER, INVOICE) for n in sorted(names.get(dt, ()))]
		facts.documents[tag] = contexts.run(tag, lambda keys=keys: _documents(keys))
		facts.copies[tag] = contexts.run(other, lambda keys=keys: _documents(keys))
	for probe in probes.sent:
		probe["handled"] = contexts.run(probe["tag"], lambda p=probe: _probe_handled(p))
	facts.probes = probes.sent
	facts.kafka = _read_topics(bootstrap, soak_topics)
	return facts


def _outbound(names: dict[str, set[str]]) -> list[dict]:
	import frappe

	frappe.db.rollback()
	rows: list[dict] = []
	for doctype, docs in names.items():
		docs = sorted(docs)
		for i in range(0, len(docs), 1000):
			rows += frappe.db.sql(
				"""SELECT name, message_id, document_type, document_name, event, topic, kafka_key, status,
				creation, last_error FROM `tabMessage Log` WHERE direction = 'Outbound' AND document_type = %s
				AND document_name IN %s""",
				(doctype, tuple(docs[i : i + 1000])),
				as_dict=True,
			)
	return rows


def _inbound(soak_topics: list[str]) -> list[dict]:
	import frappe

	frappe.db.rollback()
	return frappe.db.sql(
		"""SELECT message_id, topic, kafka_key, status, done_at, kafka_partition, kafka_offset, last_error
		FROM `tabMessage Log` WHERE direction = 'Inbound' AND topic IN %s""",
		(tuple(soak_topics),),
		as_dict=True,
	)


def _effects(since) -> dict[str, list]:
	import frappe

	frappe.db.rollback()
	found: dict[str, list] = {}
	for content, creation in frappe.db.sql(
		"SELECT content, creation FROM `tabComment` WHERE reference_doctype = 'ToDo' AND comment_type = 'Info' "
		"AND content LIKE 'spine-demo %%' AND creation >= %s",
		(since,),
	):
		found.setdefault(content.removeprefix("spine-demo "), []).append(creation)
	return found


def _documents(keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
	import frappe

	frappe.db.rollback()
	state: dict[tuple[str, str], Any] = {}
	for doctype, name in keys:
		fields = ["title", "price"] if doctype == MASTER else ["docstatus", "customer"]
		row = frappe.db.get_value(doctype, name, fields, as_dict=True)
		state[(doctype, name)] = tuple(row.values()) if row else "gone"
	return state


def _probe_handled(probe: dict) -> bool:
	import frappe

	frappe.db.rollback()
	if probe["doctype"] == MASTER:
		return bool(frappe.db.exists(MASTER, probe["name"]))
	status = frappe.db.get_value(
		"Message Log", {"message_id": probe["message_id"], "direction": "Inbound"}, "status"
	)
	return status == "Processed"


def _read_topics(bootstrap: str, soak_topics: list[str]) -> dict[str, Counter]:
	"""Every message of the soak's topics, from the first offset to the end: copies per message id."""
	from confluent_kafka import Consumer, TopicPartition

	found: dict[str, Counter] = {t: Counter() for t in soak_topics}
	c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-read-{uuid.uuid4().hex[:6]}",
		"enable.auto.commit": False})  # fmt: skip
	try:
		meta = c.list_topics(timeout=30).topics
		ends: dict[tuple[str, int], int] = {}
		parts = []
		for t in soak_topics:
			for p in meta.get(t).partitions if meta.get(t) else {}:
				low, high = c.get_watermark_offsets(TopicPartition(t, p), timeout=30)
				if high > low:
					ends[(t, p)] = high
					parts.append(TopicPartition(t, p, low))
		c.assign(parts)
		left = dict(ends)
		deadline = time.monotonic() + 300
		while left and time.monotonic() < deadline:
			for m in c.consume(1000, 1.0):
				if m.error():
					continue
				with contextlib.suppress(Exception):
					found[m.topic()][json.loads(m.value())["Header"]["MessageId"]] += 1
				if m.offset() + 1 >= left.get((m.topic(), m.partition()), 0):
					left.pop((m.topic(), m.partition()), None)
	finally:
		c.close()
	return found
