"""Producer on a real site and a real broker: capture, relay, order, rollback, broker outage."""

from __future__ import annotations

import json
import tempfile

import pytest

from tests.bench.helpers import (
	BenchProcess,
	assert_key_order,
	read_topic,
	restore_single,
	site_kafka,
	unique,
	wait_for,
)

TEST_DOCTYPE = "Spine Test Order"
ALL_EVENTS = dict(on_insert=1, on_update=1, on_submit=1, on_cancel=1, on_trash=1, after_rename=1)


@pytest.fixture(scope="module")
def test_doctype(frappe_site):
	"""A custom submittable, renamable DocType that exists only for these tests."""
	import frappe

	if not frappe.db.exists("DocType", TEST_DOCTYPE):
		frappe.get_doc(
			{
				"doctype": "DocType",
				"name": TEST_DOCTYPE,
				"module": "Spine Adapter",
				"custom": 1,
				"is_submittable": 1,
				"allow_rename": 1,
				"autoname": "hash",
				"fields": [
					{"fieldname": "title", "fieldtype": "Data", "label": "Title"},
					{"fieldname": "amount", "fieldtype": "Currency", "label": "Amount"},
				],
				"permissions": [
					{
						"role": "System Manager",
						"read": 1,
						"write": 1,
						"create": 1,
						"delete": 1,
						"submit": 1,
						"cancel": 1,
					}
				],
			}
		).insert(ignore_permissions=True)
		frappe.db.commit()
	return TEST_DOCTYPE


@pytest.fixture
def kafka_on_site(frappe_site, kafka_bootstrap):
	with site_kafka(kafka_bootstrap) as conf:
		yield conf


def outbox(**filters) -> list:
	import frappe

	return frappe.get_all(
		"Message Log",
		filters={"direction": "Outbound", **filters},
		fields=[
			"name",
			"status",
			"event",
			"document_name",
			"message_id",
			"kafka_key",
			"kafka_partition",
			"kafka_offset",
			"attempts",
			"last_error",
			"message",
		],
		order_by="name",
	)


def drain() -> int:
	from spine.producer import relay

	return relay.drain()


def test_every_event_is_published_once_in_order(test_doctype, routes, kafka_on_site, kafka_bootstrap):
	import frappe

	topic = unique("orders")
	routes({"document_type": test_doctype, "topic": topic, **ALL_EVENTS})
	a = frappe.get_doc({"doctype": test_doctype, "title": "A", "amount": 12.5}).insert()
	a.submit()
	a.cancel()
	frappe.db.commit()
	a.delete()
	b = frappe.get_doc({"doctype": test_doctype, "title": "B"}).insert()
	frappe.db.commit()
	new_b = unique("renamed")
	frappe.rename_doc(test_doctype, b.name, new_b)
	frappe.get_doc(test_doctype, new_b).delete()
	todo = frappe.get_doc({"doctype": "ToDo", "description": "not configured"}).insert()  # no route: no event
	frappe.db.commit()

	rows = outbox(topic=topic)
	assert [(r.document_name, r.event) for r in rows] == [
		(a.name, "after_insert"), (a.name, "on_update"),
		(a.name, "on_update"), (a.name, "on_submit"),
		(a.name, "on_cancel"), (a.name, "on_trash"),
		(b.name, "after_insert"), (b.name, "on_update"),
		(new_b, "after_rename"), (new_b, "on_trash"),
	]  # fmt: skip
	assert not outbox(document_type="ToDo", document_name=todo.name)

	assert drain() >= len(rows)  # rows other tests left Pending may go out too
	published = outbox(topic=topic)
	assert {r.status for r in published} == {"Published"}
	msgs = read_topic(kafka_bootstrap, topic, len(rows))
	assert sorted(json.loads(m.value())["Header"]["MessageId"] for m in msgs) == sorted(
		r.message_id for r in rows
	)
	for r in published:  # the recorded partition/offset is where the broker put it
		m = next(m for m in msgs if (m.partition(), m.offset()) == (r.kafka_partition, r.kafka_offset))
		body = json.loads(m.value())
		assert body["Header"]["MessageId"] == r.message_id and m.key().decode() == r.kafka_key
		headers = dict(m.headers())
		assert (
			headers["spine-message-id"] == r.message_id.encode()
			and headers["spine-event"] == r.event.encode()
		)
		assert headers["spine-doctype"] == test_doctype.encode()
		assert body["Header"]["DocType"] == test_doctype and body["Header"]["Event"] == r.event
		assert body["Payload"]["name"] in (a.name, b.name, new_b)
	rename = next(
		json.loads(m.value()) for m in msgs if json.loads(m.value())["Header"]["Event"] == "after_rename"
	)
	assert rename["Payload"]["rename_meta"] == {"old_name": b.name, "new_name": new_b, "merge": False}
	assert_key_order(msgs, rows)


def test_rolled_back_save_publishes_nothing(test_doctype, routes, kafka_on_site, kafka_bootstrap):
	import frappe

	topic = unique("rollback")
	routes({"document_type": test_doctype, "topic": topic, **ALL_EVENTS})
	frappe.db.commit()
	doc = frappe.get_doc({"doctype": test_doctype, "title": "never"}).insert()
	assert outbox(topic=topic), "the row exists inside the transaction"
	frappe.db.rollback()
	assert not outbox(topic=topic)
	assert not frappe.db.exists(test_doctype, doc.name)
	drain()
	assert read_topic(kafka_bootstrap, topic, 0, timeout=1, exact_wait=2) == []


def test_producer_handler_semantics(routes, kafka_on_site, kafka_bootstrap):
	import frappe

	marker_topic, drop_topic, raise_topic = unique("marker"), unique("drop"), unique("raise")
	routes(
		{"document_type": "ToDo", "topic": marker_topic, "on_update": 1,
			"event_handler": "spine.demo.add_marker"},
		{"document_type": "ToDo", "topic": drop_topic, "on_update": 1,
			"event_handler": "spine.demo.drop_closed"},
		{"document_type": "ToDo", "topic": raise_topic, "on_update": 1,
			"event_handler": "spine.demo.always_raise"},
	)  # fmt: skip
	errors_before = frappe.db.count("Error Log")
	todo = frappe.get_doc({"doctype": "ToDo", "description": "handled", "status": "Closed"}).insert()
	frappe.db.commit()

	marked = outbox(topic=marker_topic)
	assert len(marked) == 1
	assert json.loads(marked[0].message)["Payload"]["spine_marker"] == f"on_update:{todo.name}"
	assert outbox(topic=drop_topic) == [], "a handler returning None drops the event"
	raised = outbox(topic=raise_topic)
	assert len(raised) == 1, "a raising handler publishes the original"
	payload = json.loads(raised[0].message)["Payload"]
	assert payload["name"] == todo.name and "spine_marker" not in payload
	log = frappe.get_all("Error Log", fields=["method", "reference_name"], order_by="creation desc", limit=1)[
		0
	]
	assert frappe.db.count("Error Log") == errors_before + 1
	assert log.reference_name == todo.name and "always_raise" in log.method


def test_config_change_applies_to_the_next_event(routes, kafka_on_site):
	import frappe

	first, second = unique("first"), unique("second")
	routes({"document_type": "ToDo", "topic": first, "on_update": 1})
	frappe.get_doc({"doctype": "ToDo", "description": "one"}).insert()
	routes({"document_type": "ToDo", "topic": second, "on_update": 1})
	frappe.get_doc({"doctype": "ToDo", "description": "two"}).insert()
	frappe.db.commit()
	assert len(outbox(topic=first)) == 1 and len(outbox(topic=second)) == 1


@pytest.mark.slow
def test_after_commit_kick_publishes_through_a_real_worker(routes, kafka_on_site, kafka_bootstrap):
	import frappe

	topic = unique("kick")
	routes({"document_type": "ToDo", "topic": topic, "on_update": 1})
	worker = BenchProcess("worker", "--queue", "short")
	try:
		todo = frappe.get_doc({"doctype": "ToDo", "description": "kicked"}).insert()
		frappe.db.commit()  # the kick is sent now; nobody calls drain()

		def published():
			frappe.db.rollback()
			rows = outbox(topic=topic)
			return rows and rows[0].status == "Published"

		wait_for(published, 30, what=f"the worker to publish (worker log: {worker.output()[-500:]})")
		msgs = read_topic(kafka_bootstrap, topic, 1)
		assert [json.loads(m.value())["Payload"]["name"] for m in msgs] == [todo.name]
	finally:
		worker.stop()


@pytest.mark.slow
def test_two_relays_at_once_neither_duplicate_nor_reorder(routes, kafka_on_site, kafka_bootstrap):
	import frappe

	topic = unique("two-relays")
	routes({"document_type": "ToDo", "topic": topic, "on_update": 1})
	todos = [frappe.get_doc({"doctype": "ToDo", "description": f"r{i}"}).insert() for i in range(20)]
	for round_ in range(15):
		for t in todos:
			t.description = f"{t.name} round {round_}"
			t.save()
	frappe.db.commit()
	rows = outbox(topic=topic)
	assert len(rows) == 20 * 16
	relays = [BenchProcess("execute", "spine.producer.relay.drain") for _ in range(2)]
	for r in relays:
		assert r.proc.wait(120) == 0, r.output()[-2000:]
	frappe.db.rollback()
	assert {r.status for r in outbox(topic=topic)} == {"Published"}
	msgs = read_topic(kafka_bootstrap, topic, len(rows))
	ids = [json.loads(m.value())["Header"]["MessageId"] for m in msgs]
	assert len(ids) == len(set(ids)) == len(rows), "each event exactly once"
	assert_key_order(msgs, rows)


@pytest.mark.slow
def test_broker_outage_loses_nothing_and_publishes_each_event_once(routes, frappe_site):
	"""1,000 saves while the broker is down (SIGKILLed) all succeed; after it returns every event is
	published once, in order."""
	import frappe

	from tests.brokers import OwnBroker

	broker = OwnBroker()
	topic = unique("outage")
	try:
		with site_kafka(broker.bootstrap_servers, **{"message.timeout.ms": 3000}):
			routes({"document_type": "ToDo", "topic": topic, "on_update": 1})
			# create the topic while the broker is up, so the outage is the only problem
			frappe.get_doc({"doctype": "ToDo", "description": "warm-up"}).insert()
			frappe.db.commit()
			drain()
			assert [r.status for r in outbox(topic=topic)] == ["Published"]
			broker.kill()

			todos = [frappe.get_doc({"doctype": "ToDo", "description": f"o{i}"}).insert() for i in range(50)]
			frappe.db.commit()
			for n in range(19):
				for t in todos:
					t.description = f"{t.name} edit {n}"
					t.save()
				frappe.db.commit()  # each user's save commits while Kafka is down
			rows = outbox(topic=topic)
			assert len(rows) == 1 + 50 * 20
			drain()
			pending = outbox(
				topic=topic, status="Pending"
			)  # nothing can be confirmed while the broker is down
			assert len(pending) == 1000 and any(r.attempts for r in pending)

			broker.start()
			frappe.db.sql(  # skip the backoff wait instead of sleeping through it
				"UPDATE `tabMessage Log` SET next_attempt_at = NULL WHERE topic = %s AND status = 'Pending'",
				topic,
			)
			frappe.db.commit()

			def all_published():
				drain()
				return not outbox(topic=topic, status="Pending")

			wait_for(all_published, 120, interval=1, what="the backlog to be published")
			msgs = read_topic(broker.bootstrap_servers, topic, len(rows))
			ids = [json.loads(m.value())["Header"]["MessageId"] for m in msgs]
			assert len(ids) == len(set(ids)) == len(rows), "every event once, none twice"
			assert set(ids) == {r.message_id for r in rows}
			assert_key_order(msgs, rows)
	finally:
		broker.close()


def test_unconfigured_doctype_capture_touches_no_database(routes, frappe_site):
	"""No route for the DocType: on_event returns after a cached dict lookup, with no SQL."""
	import frappe

	from spine.producer import capture

	routes({"document_type": "ToDo", "topic": unique("t"), "on_update": 1})
	capture.on_event(frappe.new_doc("ToDo"), "on_update")  # warm the route cache
	note = frappe.new_doc("Note")
	note.name = "x"
	calls = []
	original = frappe.db.sql
	frappe.db.sql = lambda *a, **k: calls.append(a) or original(*a, **k)
	try:
		capture.on_event(note, "on_update")
	finally:
		frappe.db.sql = original
	assert calls == []


def test_backfill_publishes_existing_documents_in_batches(routes, kafka_on_site, kafka_bootstrap):
	import frappe

	from spine.producer.backfill import backfill

	marker = unique("backfill")
	names = [
		frappe.get_doc({"doctype": "ToDo", "description": f"{marker} {i}"}).insert().name for i in range(25)
	]
	frappe.db.commit()  # written before the route exists: nothing captured yet
	topic = unique("backfill-topic")
	routes({"document_type": "ToDo", "topic": topic, "on_submit": 1})  # backfill ignores the event choice
	with pytest.raises(frappe.ValidationError, match="no enabled row"):
		backfill("Note")
	steps = []
	done = backfill(
		"ToDo",
		{"description": ["like", f"{marker}%"]},
		batch_size=10,
		progress=lambda n, t: steps.append((n, t)),
	)
	assert done == 25 and steps == [(10, 25), (20, 25), (25, 25)]
	rows = outbox(topic=topic)
	assert sorted(r.document_name for r in rows) == sorted(names) and {r.event for r in rows} == {"on_update"}
	drain()
	assert len(read_topic(kafka_bootstrap, topic, 25)) == 25


@pytest.mark.slow
def test_backfill_command(routes, kafka_on_site):
	import frappe

	marker = unique("cmd")
	for i in range(3):
		frappe.get_doc({"doctype": "ToDo", "description": f"{marker} {i}"}).insert()
	frappe.db.commit()
	topic, other = unique("backfill-cmd"), unique("backfill-other")
	routes(
		{"document_type": "ToDo", "topic": topic, "on_update": 1},
		{"document_type": "ToDo", "topic": other, "on_update": 1},
	)
	proc = BenchProcess(
		"spine-backfill",
		"ToDo",
		"--filters",
		json.dumps({"description": ["like", f"{marker}%"]}),
		"--batch-size",
		"2",
		"--topic",
		topic,
		"--event",
		"by docstatus",
	)
	assert proc.proc.wait(120) == 0, proc.output()[-2000:]
	assert "ToDo: 2 of 3 captured" in proc.output() and "ToDo: 3 documents captured" in proc.output()
	frappe.db.rollback()
	assert [r.event for r in outbox(topic=topic)] == ["on_update"] * 3, "drafts as on_update"
	assert not outbox(topic=other), "only the rows publishing to --topic"


@pytest.mark.slow
def test_relay_process_publishes_each_commit_at_once_and_stops_cleanly(
	routes, kafka_on_site, kafka_bootstrap
):
	"""`bench spine-relay` is woken by the commit's kick: no RQ job is queued, the row is Published."""
	import signal

	import frappe
	from frappe.utils.background_jobs import get_queue

	topic = unique("relayproc")
	routes({"document_type": "ToDo", "topic": topic, "on_update": 1})
	relay = BenchProcess("spine-relay")
	try:
		wait_for(lambda: "publishing committed events" in relay.output(), 60, what=relay.output)
		get_queue("short").empty()
		todos = []
		for i in range(5):
			todos.append(frappe.get_doc({"doctype": "ToDo", "description": f"relay {i}"}).insert())
			frappe.db.commit()

		def published():
			frappe.db.rollback()
			rows = outbox(topic=topic)
			return len(rows) == 5 and all(r.status == "Published" for r in rows)

		wait_for(published, 10, what=lambda: f"the relay process to publish\n{relay.output()[-2000:]}")
		assert not [j for j in get_queue("short").jobs if "relay" in (j.description or "")], "no fallback job"
		msgs = read_topic(kafka_bootstrap, topic, 5)
		assert sorted(json.loads(m.value())["Payload"]["name"] for m in msgs) == sorted(t.name for t in todos)
	finally:
		relay.signal(signal.SIGTERM)
		code = relay.proc.wait(30)
	assert code == 0, relay.output()[-2000:]
	assert "stopped" in relay.output()


def test_header_timestamp_is_site_time_with_its_offset(routes, frappe_site):
	"""Header.Timestamp says the instant unambiguously: ISO 8601 in the site's time zone, offset included."""
	import datetime
	from zoneinfo import ZoneInfo

	import frappe
	from frappe.utils import get_system_timezone

	topic = unique("stamp")
	routes({"document_type": "ToDo", "topic": topic, "on_insert": 1})
	todo = frappe.get_doc({"doctype": "ToDo", "description": "when"}).insert()
	row = outbox(topic=topic)[0]
	frappe.db.rollback()
	stamp = datetime.datetime.fromisoformat(json.loads(row.message)["Header"]["Timestamp"])
	site_zone = ZoneInfo(get_system_timezone())
	assert stamp.utcoffset() == datetime.datetime.now(site_zone).utcoffset()
	assert abs((stamp - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 60
	assert todo.name in row.message
