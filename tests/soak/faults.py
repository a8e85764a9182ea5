"""The soak's faults, done for real: processes SIGKILLed and started again, the broker and the queue's
Redis SIGKILLed and started again, database connections KILLed in bursts, a site taken out of the
bench-wide processes and brought back, and config saved while messages flow.

``Processes`` runs Spine's bench-wide commands (no ``--site``: they serve both sites) as supervisor
would; ``Chaos`` carries out a ``schedule.Fault`` and writes down when it began and ended.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from tests.bench.helpers import BenchProcess, wait_for
from tests.soak.journal import ConfigSave, FaultRun, Journal
from tests.soak.schedule import Fault

HANDLER = "spine.demo.add_comment_row"
COMMANDS = {
	"relay": ("spine-relay",),
	"dispatcher": ("eventdispatcher", "--queue", "{queue}", "--numworkers", "2"),
	"jsonworker": ("jsonworker", "--queue", "{queue}", "--numworkers", "2"),
}
READY = {
	"relay": "publishing committed events",
	"dispatcher": "following topics",
	"jsonworker": "executing jobs",
}


class Processes:
	"""Spine's three bench-wide commands, each started again after it is killed."""

	def __init__(self, queue: str):
		self.queue = queue
		self.procs: dict[str, BenchProcess] = {}
		self.logs: list[BenchProcess] = []  # every process started, for the report's log tails
		for name in COMMANDS:
			self.start(name)

	def start(self, name: str) -> None:
		args = [a.format(queue=self.queue) for a in COMMANDS[name]]
		proc = BenchProcess(*args, site="")
		self.procs[name] = proc
		self.logs.append(proc)

	def wait_ready(self, timeout: float = 120) -> None:
		for name, proc in self.procs.items():
			wait_for(
				lambda p=proc, n=name: READY[n] in p.output(), timeout, what=lambda p=proc: p.output()[-3000:]
			)

	def kill(self, name: str) -> None:
		self.procs[name].kill()

	def stop(self) -> None:
		for proc in self.procs.values():
			proc.stop()

	def tails(self, chars: int = 2500) -> str:
		return "\n".join(f"--- {' '.join(p.args)}\n{p.output()[-chars:]}" for p in self.procs.values())

	def remove_logs(self) -> None:
		for proc in self.logs:
			with contextlib.suppress(OSError):
				os.unlink(proc.log.name)


class Killer:
	"""``KILL`` every connection of the sites' database users except the soak driver's own (``spared``)."""

	def __init__(self, users: list[str], spared: set[int], host: str | None, port: int | None):
		import pymysql

		self.users, self.spared = users, spared
		self.root = pymysql.connect(
			host=host or "127.0.0.1", port=int(port or 3306),
			user=os.environ.get("SPINE_DB_ROOT_USER", "root"),
			password=os.environ.get("SPINE_DB_ROOT_PASSWORD", ""), autocommit=True,
		)  # fmt: skip
		self.killed = 0

	def kill_once(self) -> int:
		killed = 0
		with self.root.cursor() as cur:
			cur.execute(
				"SELECT id FROM information_schema.PROCESSLIST WHERE user IN %s", (tuple(self.users),)
			)
			for (conn_id,) in cur.fetchall():
				if conn_id in self.spared:
					continue
				with contextlib.suppress(Exception):
					cur.execute(f"KILL {int(conn_id)}")
					killed += 1
		self.killed += killed
		return killed

	def burst(self, seconds: float, every: float = 0.7) -> int:
		end, before = time.monotonic() + seconds, self.killed
		while time.monotonic() < end:
			self.kill_once()
			time.sleep(every)
		return self.killed - before


class Chaos:
	"""Carries out faults. ``sites`` maps "a"/"b" to site names; ``run_in(tag, fn)`` runs ``fn`` in that
	site's Frappe context (the chaos thread's own connections); ``topics`` holds the soak's topics."""

	def __init__(
		self,
		sites: dict[str, str],
		run_in,
		journal: Journal,
		processes: Processes,
		cluster,
		redis,
		killer: Killer,
		topics: dict[str, Any],
		probes,
	):
		self.sites, self.run_in, self.journal = sites, run_in, journal
		self.processes, self.cluster, self.redis, self.killer = processes, cluster, redis, killer
		self.topics, self.probes = topics, probes
		self.flips = {"a": 0, "b": 0}
		self.decoys: dict[str, list[str]] = {"a": [], "b": []}
		self.rule_decoys: dict[str, list[str]] = {"a": [], "b": []}

	def now(self):
		"""The sites' clock (as Frappe stamps ``done_at``), read in site a's context."""
		from frappe.utils import now_datetime

		return self.run_in("a", now_datetime)

	def __call__(self, fault: Fault) -> None:
		started = self.now()
		note, error = "", ""
		try:
			note = getattr(self, fault.kind)(fault) or ""
		except Exception as e:  # written down: the report lists a fault that could not be done
			error = f"{type(e).__name__}: {e}"
		self.journal.add(FaultRun(fault.kind, fault.site, started, self.now(), note, error))

	# --- outages
	def _restart(self, name: str, fault: Fault) -> str:
		self.processes.kill(name)
		time.sleep(fault.seconds)
		self.processes.start(name)
		return f"{name} SIGKILLed, started again after {fault.seconds}s"

	def kill_relay(self, fault: Fault) -> str:
		return self._restart("relay", fault)

	def kill_dispatcher(self, fault: Fault) -> str:
		return self._restart("dispatcher", fault)

	def kill_jsonworker(self, fault: Fault) -> str:
		return self._restart("jsonworker", fault)

	def kill_broker(self, fault: Fault) -> str:
		node = self._busiest_leader() if self.cluster.size > 1 else 1
		self.cluster.kill_node(node)
		time.sleep(fault.seconds)
		self.cluster.start_node(node)
		return f"broker node {node} SIGKILLed, started again after {fault.seconds}s"

	def _busiest_leader(self) -> int:
		from confluent_kafka import Consumer, TopicPartition

		topic = self.topics["todo"]["a"]
		c = Consumer({"bootstrap.servers": self.cluster.bootstrap_servers, "group.id": "soak-look"})
		try:
			meta = c.list_topics(topic, timeout=10).topics[topic]
			ends = {
				p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions
			}
			return meta.partitions[max(ends, key=ends.get)].leader
		finally:
			c.close()

	def kill_redis(self, fault: Fault) -> str:
		self.redis.kill()
		time.sleep(fault.seconds)
		self.redis.start()
		return f"queue Redis SIGKILLed, started again after {fault.seconds}s"

	def kill_db_connections(self, fault: Fault) -> str:
		killed = self.killer.burst(fault.seconds)
		return f"{killed} connections KILLed in {fault.seconds}s"

	def site_out(self, fault: Fault) -> str:
		from frappe.installer import update_site_config

		self.run_in(fault.site, lambda: update_site_config("maintenance_mode", 1))
		time.sleep(fault.seconds)
		self.run_in(fault.site, lambda: update_site_config("maintenance_mode", 0))
		return f"{self.sites[fault.site]} in maintenance mode for {fault.seconds}s"

	# --- config saves while messages flow
	def save_producer_config(self, fault: Fault) -> str:
		"""The site's Notes go to a new topic (and, every other time, its ToDos to a second new topic
		too); the other site follows the new topics (and keeps following the old ones)."""
		tag, other = fault.site, "b" if fault.site == "a" else "a"
		self.flips[tag] += 1
		n = self.flips[tag]
		note_topic = f"{self.topics['prefix']}-note-{tag}-{n}"
		extra = f"{self.topics['prefix']}-extra-{tag}-{n}" if n % 2 else None
		self.topics["flips"][tag].append((note_topic, "Note"))
		if extra:
			self.topics["flips"][tag].append((extra, "ToDo"))
		self.topics["all"].update({note_topic, *([extra] if extra else [])})
		self.probes.create_topics([note_topic, *([extra] if extra else [])])
		self.run_in(tag, lambda: set_producer_routes(self, tag, note_topic, extra))
		self.run_in(other, lambda: set_consumer_rows(self, other))
		return f"{self.sites[tag]}: Note -> {note_topic}" + (f", ToDo also -> {extra}" if extra else "")

	def save_consumer_config(self, fault: Fault) -> str:
		"""A decoy row added (a new topic nobody publishes to but the probe) or the oldest removed; a
		probe message on each, after the save: one on a followed topic must be handled, one on a
		topic no longer followed must not."""
		tag = fault.site
		decoys = self.decoys[tag]
		if len(decoys) >= 2 and fault.pick % 2:
			removed = decoys.pop(0)
			self.run_in(tag, lambda: set_consumer_rows(self, tag))
			time.sleep(0.5 + (fault.pick % 1500) / 1000)
			self.probes.send(tag, removed, "ToDo", False, self.now())
			return f"{self.sites[tag]}: stopped following {removed}"
		topic = f"{self.topics['prefix']}-decoy-{tag}-{len(self.topics['all'])}"
		self.probes.create_topics([topic])
		self.topics["all"].add(topic)
		decoys.append(topic)
		self.run_in(tag, lambda: set_consumer_rows(self, tag))
		time.sleep(0.5 + (fault.pick % 1500) / 1000)
		self.probes.send(tag, topic, "ToDo", True, self.now())
		return f"{self.sites[tag]}: follows {topic}"

	def save_sync_rule(self, fault: Fault) -> str:
		"""The site's master rule saved with a field-map row added or removed (an identity mapping: the
		result is the same), and a decoy rule on a new topic added, or the oldest removed, each checked
		by a probe master published after the save."""
		tag = fault.site
		self.run_in(tag, lambda: toggle_rule_field_map(self.topics["sync"][other_tag(tag)]))
		decoys = self.rule_decoys[tag]
		if len(decoys) >= 2 and fault.pick % 2:
			removed = decoys.pop(0)
			self.run_in(tag, lambda: delete_decoy_rule(removed))
			time.sleep(0.5 + (fault.pick % 1500) / 1000)
			self.probes.send(tag, removed, "Spine Sync Master", False, self.now())
			return f"{self.sites[tag]}: master rule saved; decoy rule on {removed} deleted"
		topic = f"{self.topics['prefix']}-rule-{tag}-{len(self.topics['all'])}"
		self.probes.create_topics([topic])
		self.topics["all"].add(topic)
		decoys.append(topic)
		self.run_in(tag, lambda: add_decoy_rule(topic))
		time.sleep(0.5 + (fault.pick % 1500) / 1000)
		self.probes.send(tag, topic, "Spine Sync Master", True, self.now())
		return f"{self.sites[tag]}: master rule saved; decoy rule on {topic} added"


def other_tag(tag: str) -> str:
	return "b" if tag == "a" else "a"


def producer_rows(topics: dict[str, Any], tag: str, note_topic: str | None, extra: str | None) -> list[dict]:
	"""The site's Spine Producer Config rows: ToDos and synced documents always, Notes and an extra
	ToDo route where the latest flip says."""
	from tests.soak.traffic import INVOICE, MASTER

	rows = [
		{"document_type": "ToDo", "topic": topics["todo"][tag], "on_insert": 1, "on_update": 1, "on_trash": 1},
		{"document_type": MASTER, "topic": topics["sync"][tag], "on_insert": 1, "on_update": 1, "on_trash": 1,
			"after_rename": 1},
		{"document_type": INVOICE, "topic": topics["sync"][tag], "on_insert": 1, "on_update": 1, "on_submit": 1,
			"on_cancel": 1},
	]  # fmt: skip
	if note_topic:
		rows.append({"document_type": "Note", "topic": note_topic, "on_insert": 1, "on_update": 0})
	if extra:
		rows.append({"document_type": "ToDo", "topic": extra, "on_insert": 1, "on_update": 1})
	return rows


def routes_of(rows: list[dict]) -> dict[str, list]:
	"""{DocType: [[topic, [Frappe events]]]} of producer rows, as the end check expects them."""
	from spine.settings.config_cache import EVENT_FIELDS

	routes: dict[str, list] = {}
	for row in rows:
		events = [e for f, names in EVENT_FIELDS.items() if row.get(f) for e in names]
		routes.setdefault(row["document_type"], []).append([row["topic"], events])
	return routes


def set_producer_routes(chaos: Chaos, tag: str, note_topic: str | None, extra: str | None) -> None:
	"""Save the site's Spine Producer Config and write down the version it made and its routes."""
	from frappe.utils import now_datetime

	rows = producer_rows(chaos.topics, tag, note_topic, extra)
	chaos.journal.add(
		ConfigSave(
			tag,
			"Spine Producer Config",
			now_datetime(),
			str(save_producer_rows(rows)),
			routes_of(rows),
			note_topic or "",
		)  # fmt: skip
	)


def save_producer_rows(rows: list[dict]) -> Any:
	"""Save ``rows`` as the site's Spine Producer Config (enabled), commit; the version that made."""
	import frappe

	from tests.soak.traffic import producer_version

	doc = frappe.get_single("Spine Producer Config")
	doc.enabled = 1
	doc.set("configs", rows)
	doc.save(ignore_permissions=True)
	frappe.db.commit()
	version = producer_version()
	frappe.db.rollback()
	return version


def consumer_rows(chaos_topics: dict[str, Any], tag: str, decoys: list[str]) -> list[dict]:
	"""The site's Spine Consumer Config rows: the other site's ToDos (signed by it), its flip topics,
	this site's decoys, and its requests (answered)."""
	other = other_tag(tag)
	rows = [
		{"topic": chaos_topics["todo"][other], "document_type": "ToDo", "event_handler": HANDLER,
			"require_signature": 1, "accept_from": chaos_topics["sites"][other]},
		{"topic": chaos_topics["ask"][tag], "document_type": "Spine Request", "event_handler": "spine.demo.answer"},
	]  # fmt: skip
	# every topic the other site ever routed to: what it captured before a flip may still be on its way
	rows += [
		{"topic": t, "document_type": d, "event_handler": HANDLER} for t, d in chaos_topics["flips"][other]
	]
	rows += [{"topic": t, "document_type": "ToDo", "event_handler": HANDLER} for t in decoys]
	return rows


def set_consumer_rows(chaos: Chaos, tag: str) -> None:
	import frappe
	from frappe.utils import now_datetime

	rows = consumer_rows(chaos.topics, tag, chaos.decoys[tag])
	doc = frappe.get_single("Spine Consumer Config")
	doc.enabled = 1
	doc.set("configs", rows)
	doc.save(ignore_permissions=True)
	frappe.db.commit()
	chaos.journal.add(
		ConfigSave(tag, "Spine Consumer Config", now_datetime(), note=", ".join(r["topic"] for r in rows))
	)


def toggle_rule_field_map(topic: str) -> None:
	import frappe

	name = frappe.db.get_value("Spine Sync Rule", {"topic": topic, "source_doctype": "Spine Sync Master"})
	rule = frappe.get_doc("Spine Sync Rule", name)
	if rule.get("field_map"):
		rule.set("field_map", [])
	else:
		rule.append("field_map", {"source_field": "price", "local_field": "price"})
	rule.save(ignore_permissions=True)
	frappe.db.commit()


def add_decoy_rule(topic: str) -> None:
	import frappe

	frappe.get_doc({
		"doctype": "Spine Sync Rule", "title": f"soak decoy {topic}", "topic": topic,
		"source_doctype": "Spine Sync Master", "create_missing": 1,
	}).insert(ignore_permissions=True)  # fmt: skip
	frappe.db.commit()


def delete_decoy_rule(topic: str) -> None:
	import frappe

	for name in frappe.get_all("Spine Sync Rule", {"topic": topic}, pluck="name"):
		frappe.delete_doc("Spine Sync Rule", name, ignore_permissions=True, force=True)
	frappe.db.commit()
