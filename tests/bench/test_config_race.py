"""Config saved while Spine's processes are busy is in force for every transaction that follows.

The site runs spine-relay, eventdispatcher, jsonworker and Frappe's ``bench worker`` while 20
messages arrive every 100 ms (200 a second: the processes stay busy; at 1,000 a second, as the issue
that found the race flowed them, this 2-core machine builds a backlog that only delays each round). Each round saves Spine Producer Config (Notes to a new topic; every
other round ToDos to another new topic) and Spine Consumer Config (a new topic followed, last
round's dropped), waits 0.5 to 2 s, then saves a Note (and a ToDo) in a fresh transaction here and has
the busy jsonworker insert a Note in its own job. Every one of them must be captured for the topic
of that round, once; a message sent to the round's new topic must be handled, one sent to the topic
just dropped must not. (Before configs were versioned by their rows, 5 of 40 rounds captured the
Note for the previous round's topic: a process whose snapshot predated the save cached the old
routes in Redis after the save had cleared them.)
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from tests.bench.helpers import BenchProcess, produce, site_kafka, spine_message, unique, wait_for

pytestmark = pytest.mark.slow

ROUNDS = 100
SEED = 38


class Flow(threading.Thread):
	"""20 messages every ``every`` seconds to ``topic`` until stopped; an error is kept and raised by ``check``."""

	def __init__(self, bootstrap: str, topic: str, every: float = 0.1):
		super().__init__(daemon=True)
		self.bootstrap, self.topic, self.every = bootstrap, topic, every
		self.stop = threading.Event()
		self.sent = 0
		self.error: BaseException | None = None

	def run(self) -> None:
		from confluent_kafka import Producer

		from spine import envelope

		try:
			p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
			while not self.stop.wait(self.every):
				for _ in range(20):
					env, _item = spine_message(self.topic, "ToDo", f"F-{self.sent % 97}", {"n": self.sent})
					p.produce(self.topic, envelope.encode(env), env.key, headers=env.headers())
					self.sent += 1
				p.poll(0)
			assert p.flush(30) == 0
		except BaseException as e:
			self.error = e

	def check(self) -> None:
		self.stop.set()
		self.join(60)
		assert not self.is_alive(), "the flow did not stop"
		if self.error:
			raise AssertionError(f"the flow failed: {self.error!r}") from self.error
		assert self.sent > 1000, f"only {self.sent} messages flowed"


def _save(producer_rows: list[dict], consumer_rows: list[dict]) -> None:
	import frappe

	frappe.db.rollback()
	doc = frappe.get_single("Spine Producer Config")
	doc.enabled = 1
	doc.set("configs", producer_rows)
	doc.save(ignore_permissions=True)
	consumer = frappe.get_single("Spine Consumer Config")
	consumer.enabled = 1
	consumer.set("configs", consumer_rows)
	consumer.save(ignore_permissions=True)
	frappe.db.commit()


def _status(message_id: str) -> str | None:
	import frappe

	frappe.db.rollback()
	return frappe.db.get_value("Message Log", {"message_id": message_id, "direction": "Inbound"}, "status")


def _captured(doctype: str, names: list[str]) -> dict[str, list[str]]:
	"""{document name: topics of its Outbound rows}."""
	import frappe

	frappe.db.rollback()
	found: dict[str, list[str]] = {n: [] for n in names}
	for name, topic in frappe.db.sql(
		"SELECT document_name, topic FROM `tabMessage Log` WHERE direction = 'Outbound' AND document_type = %s "
		"AND document_name IN %s",
		(doctype, tuple(names)),
	):
		found[name].append(topic)
	return found


def test_config_saved_while_processes_are_busy_is_in_force_for_every_next_transaction(
	routes, consumer_config, kafka_bootstrap
):
	import frappe

	from tests.conftest import create_topic

	rng = random.Random(SEED)
	prefix = unique("race")
	flow_topic = create_topic(kafka_bootstrap, partitions=3, prefix=f"{prefix}-flow")
	maker_topic = create_topic(kafka_bootstrap, partitions=1, prefix=f"{prefix}-maker")
	base_consumer = [
		{"topic": flow_topic, "document_type": "ToDo", "event_handler": "spine.demo.noop"},
		{"topic": maker_topic, "document_type": "Note", "event_handler": "spine.demo.add_note"},
	]
	_save([], base_consumer)
	expected: dict[str, str] = {}  # Note title or ToDo description -> the topic it must be captured for
	probes: list[tuple[str, str, bool]] = []  # (message id, topic, must be handled)
	with site_kafka(kafka_bootstrap, **{"group.id": unique("race")}):
		queue = unique("q")
		procs = [
			BenchProcess("spine-relay"),
			BenchProcess("eventdispatcher", "--queue", queue),
			BenchProcess("jsonworker", "--queue", queue, "--numworkers", "2"),
			BenchProcess("worker", "--queue", "short,default"),
		]
		flow = Flow(kafka_bootstrap, flow_topic)
		try:
			wait_for(lambda: "following topics" in procs[1].output(), 90, what=procs[1].output)
			flow.start()
			previous_probe = None
			for k in range(ROUNDS):
				note_topic, todo_topic = f"{prefix}-note-{k}", f"{prefix}-todo-{k}"
				probe_topic = create_topic(kafka_bootstrap, partitions=1, prefix=f"{prefix}-probe-{k}")
				producer_rows = [
					{"document_type": "Note", "topic": note_topic, "on_insert": 1, "on_update": 0}
				]
				if k % 2:
					producer_rows.append(
						{"document_type": "ToDo", "topic": todo_topic, "on_insert": 1, "on_update": 0}
					)
				probe_row = {
					"topic": probe_topic,
					"document_type": "ToDo",
					"event_handler": "spine.demo.noop",
				}
				_save(producer_rows, [*base_consumer, probe_row])
				time.sleep(rng.uniform(0.5, 2.0))
				frappe.db.rollback()  # a fresh transaction, begun after the save
				here = f"{prefix} round {k} here"
				frappe.get_doc({"doctype": "Note", "title": here, "public": 1}).insert()
				expected[here] = note_topic
				if k % 2:
					todo = frappe.get_doc({"doctype": "ToDo", "description": f"{prefix} round {k}"}).insert()
					expected[todo.name] = todo_topic
				frappe.db.commit()
				worker_note = f"{prefix} round {k} worker"
				_env, made = spine_message(maker_topic, "Note", f"maker-{k}", {"title": worker_note})
				expected[worker_note] = note_topic
				sent = [(probe_topic, True)] + ([(previous_probe, False)] if previous_probe else [])
				for topic, must in sent:
					env, item = spine_message(topic, "ToDo", f"probe-{k}")
					produce(kafka_bootstrap, topic, [item])
					probes.append((env.message_id, topic, must))
				produce(kafka_bootstrap, maker_topic, [made])
				previous_probe = probe_topic
				# the round's probe and the jsonworker's Note are handled under the round's config, before the
				# next save: what they must come to is then known
				wait_for(lambda: _status(probes[0 if k == 0 else -2][0]) in ("Processed", "Skipped")
					and frappe.db.exists("Note", {"title": worker_note}), 120, interval=0.2,
					what=lambda: f"round {k}'s probe and Note handled\n{procs[2].output()[-2000:]}")  # fmt: skip
			notes = [t for t in expected if t.startswith(prefix)]
			wait_for(lambda: frappe.db.rollback() or frappe.db.count("Note", {"title": ("in", notes)}) == len(notes),
				120, interval=1, what=lambda: f"the jsonworker's Notes\n{procs[2].output()[-3000:]}")  # fmt: skip

			def probe_status() -> dict[str, str | None]:
				frappe.db.rollback()
				return {
					mid: frappe.db.get_value(
						"Message Log", {"message_id": mid, "direction": "Inbound"}, "status"
					)
					for mid, _, _ in probes
				}

			wait_for(lambda: all(probe_status()[m] == "Processed" for m, _, must in probes if must), 120,
				interval=1, what=lambda: f"the probes on followed topics handled: {probe_status()}")  # fmt: skip
			time.sleep(3)  # a probe on a dropped topic gets as long to be (wrongly) handled
		finally:
			for p in procs:
				p.stop()
		flow.check()
	note_titles = [t for t in expected if t.startswith(prefix)]
	by_title = dict(
		frappe.db.sql("SELECT title, name FROM `tabNote` WHERE title IN %s", (tuple(note_titles),))
	)
	captured = _captured("Note", list(by_title.values()))
	captured.update(_captured("ToDo", [n for n in expected if not n.startswith(prefix)]))
	wrong = {
		what: topics
		for what, topic in expected.items()
		if (topics := captured.get(by_title.get(what, what), [])) != [topic]
	}
	assert (
		not wrong
	), f"{len(wrong)} of {len(expected)} saves not captured for their round's topic, once: {wrong}"
	statuses = probe_status()
	handled_after_drop = [(m, t) for m, t, must in probes if not must and statuses[m] == "Processed"]
	assert (
		not handled_after_drop
	), f"messages handled on a topic the saved config no longer follows: {handled_after_drop}"
