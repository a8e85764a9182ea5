"""What is published, on a real site and broker: conditions, chosen fields, payload schemas and their
versions on spine.schemas, and consumers that accept some versions or check payloads."""

from __future__ import annotations

import json

import pytest

from tests.bench.helpers import read_topic, restore_single, site_kafka, spine_message, unique

PARENT, CHILD = "Spine Shape Doc", "Spine Shape Item"


@pytest.fixture(scope="module")
def shape_doctypes(frappe_site):
	"""A DocType with a child table, made for these tests."""
	import frappe

	if not frappe.db.exists("DocType", CHILD):
		frappe.get_doc({
			"doctype": "DocType", "name": CHILD, "module": "Spine Adapter", "custom": 1, "istable": 1,
			"fields": [
				{"fieldname": "item_code", "fieldtype": "Data", "label": "Item", "reqd": 1},
				{"fieldname": "qty", "fieldtype": "Float", "label": "Qty"},
				{"fieldname": "note", "fieldtype": "Data", "label": "Note"},
			],
		}).insert(ignore_permissions=True)  # fmt: skip
	if not frappe.db.exists("DocType", PARENT):
		frappe.get_doc({
			"doctype": "DocType", "name": PARENT, "module": "Spine Adapter", "custom": 1, "autoname": "hash",
			"fields": [
				{"fieldname": "title", "fieldtype": "Data", "label": "Title", "reqd": 1},
				{"fieldname": "status", "fieldtype": "Select", "label": "Status", "options": "Open\nClosed"},
				{"fieldname": "owner_user", "fieldtype": "Link", "label": "Owner", "options": "User"},
				{"fieldname": "items", "fieldtype": "Table", "label": "Items", "options": CHILD},
			],
			"permissions": [{"role": "System Manager", "read": 1, "write": 1, "create": 1, "delete": 1}],
		}).insert(ignore_permissions=True)  # fmt: skip
	frappe.db.commit()


def outbound(topic: str) -> list:
	import frappe

	return frappe.get_all("Message Log", {"direction": "Outbound", "topic": topic}, ["name", "event", "message"],
		order_by="name")  # fmt: skip


def bodies(topic: str) -> list[dict]:
	return [json.loads(r.message) for r in outbound(topic)]


def new_doc(title: str, **values):
	import frappe

	return frappe.get_doc({"doctype": PARENT, "title": title, **values}).insert()


def test_condition_decides_which_documents_are_published(shape_doctypes, routes):
	import frappe

	topic = unique("cond")
	routes(
		{
			"document_type": PARENT,
			"topic": topic,
			"on_insert": 1,
			"on_update": 0,
			"condition": 'doc.status == "Open"',
		}
	)
	open_one, closed_one = new_doc("open", status="Open"), new_doc("closed", status="Closed")
	frappe.db.commit()
	assert [b["Payload"]["name"] for b in bodies(topic)] == [open_one.name]
	assert frappe.db.exists(PARENT, closed_one.name), "the closed one was saved, only not published"


def test_publish_when_the_condition_becomes_true(shape_doctypes, routes):
	import frappe

	topic = unique("becomes")
	routes({"document_type": PARENT, "topic": topic, "on_update": 0, "condition": 'doc.status == "Closed"',
		"condition_mode": "When the condition becomes true"})  # fmt: skip
	doc = new_doc("flow", status="Open")
	assert outbound(topic) == []
	doc.status = "Closed"
	doc.save()  # starts matching on an update: published although "update" is not ticked
	doc.title = "still closed"
	doc.save()  # still matching: nothing new
	doc.status = "Open"
	doc.save()
	doc.status = "Closed"
	doc.save()  # matches again
	born = new_doc("born closed", status="Closed")  # matching from the insert on: once, not twice
	frappe.db.commit()
	published = [(b["Payload"]["name"], b["Header"]["Event"]) for b in bodies(topic)]
	assert published == [(doc.name, "on_update"), (doc.name, "on_update"), (born.name, "after_insert")]


@pytest.mark.parametrize(
	"row, says",
	[
		({"condition": 'doc.status =="'}, "the condition cannot be evaluated"),
		({"condition": "no_such_name == 1"}, "NameError"),
		({"published_fields": "title, nonexistent"}, "has no field 'nonexistent'"),
		({"published_fields": "title.qty"}, "is not a child table"),
		({"published_fields": "items.nope"}, "has no field 'nope'"),
	],
)
def test_bad_conditions_and_fields_are_refused_on_save(shape_doctypes, routes, row, says):
	import frappe

	with pytest.raises(frappe.ValidationError, match=says):
		routes({"document_type": PARENT, "topic": unique("bad"), "on_update": 1, **row})
	frappe.db.rollback()


def test_chosen_fields_with_and_without_child_tables(shape_doctypes, routes):
	import frappe

	with_rows, without_rows = unique("rows"), unique("norows")
	routes(
		{
			"document_type": PARENT,
			"topic": with_rows,
			"on_insert": 1,
			"on_update": 0,
			"published_fields": "title\nitems.item_code",
		},
		{
			"document_type": PARENT,
			"topic": without_rows,
			"on_insert": 1,
			"on_update": 0,
			"published_fields": "title",
		},
	)
	doc = new_doc("chosen", status="Open", owner_user="Administrator",
		items=[{"item_code": "I-1", "qty": 2, "note": "secret"}])  # fmt: skip
	frappe.db.commit()
	(first,) = [b["Payload"] for b in bodies(with_rows)]
	(second,) = [b["Payload"] for b in bodies(without_rows)]
	assert set(first) == {"name", "doctype", "modified", "docstatus", "title", "items"}
	assert first["items"] == [{"name": doc.items[0].name, "idx": 1, "doctype": CHILD, "item_code": "I-1"}]
	assert set(second) == {"name", "doctype", "modified", "docstatus", "title"}


def test_schema_versions_follow_the_published_shape_and_go_to_the_schema_topic(
	shape_doctypes, routes, kafka_bootstrap
):
	import frappe

	from spine.desk import schemas
	from spine.producer import relay

	topic = unique("schema")
	routes(
		{
			"document_type": PARENT,
			"topic": topic,
			"on_insert": 1,
			"on_update": 0,
			"published_fields": "title\nitems",
		}
	)
	(described,) = schemas.route_schemas(PARENT, topic)
	props = described["schema"]["properties"]
	assert props["items"]["type"] == "array" and set(props["items"]["items"]["properties"]) >= {
		"item_code",
		"qty",
		"note",
	}
	assert "title" in described["schema"]["required"]
	first = described["version"]
	with site_kafka(kafka_bootstrap):
		new_doc("v1")
		frappe.db.commit()
		routes(
			{
				"document_type": PARENT,
				"topic": topic,
				"on_insert": 1,
				"on_update": 0,
				"published_fields": "title\nitems\nowner_user",
			}
		)
		new_doc("v2")
		new_doc("v2 again")
		frappe.db.commit()
		relay.drain()
		(again,) = schemas.route_schemas(PARENT, topic)
		second = again["version"]
		assert second != first and again["schema"]["properties"]["owner_user"]["x-frappe-link"] == "User"
		assert [b["Header"]["PayloadSchema"] for b in bodies(topic)] == [first, second, second]
		published = frappe.get_all(
			"Spine Payload Schema", {"topic": topic, "direction": "Published"}, pluck="version"
		)
		assert sorted(published) == sorted([first, second]), "each version recorded once"
		msgs = [m for m in read_topic(kafka_bootstrap, "spine.schemas", 2, exact_wait=1)
			if json.loads(m.value())["Payload"]["topic"] == topic]  # fmt: skip
		assert [json.loads(m.value())["Payload"]["version"] for m in msgs] == [first, second]
		assert {m.key().decode() for m in msgs} == {
			f"Spine Payload Schema:{topic}:{PARENT}"
		}, "one key: compaction"


def test_a_consumer_skips_versions_it_does_not_accept_then_replay_handles_them(consumer_config, frappe_site):
	import frappe

	from spine.consumer import intake, processor
	from spine.desk import actions
	from tests.bench.helpers import as_records

	topic = unique("accept")
	consumer_config(
		{
			"topic": topic,
			"document_type": "ToDo",
			"event_handler": "spine.demo.noop",
			"accepted_schemas": "aaaa",
		}
	)
	env, _ = spine_message(topic, "ToDo", "T-1")
	env.body["Header"]["PayloadSchema"] = "bbbb"
	intake.store(as_records(topic, [env]))
	frappe.db.commit()
	processor.process(max_seconds=10)
	row = frappe.get_all(
		"Message Log", {"topic": topic, "direction": "Inbound"}, ["name", "status", "last_error"]
	)[0]
	assert row.status == "Skipped" and "bbbb" in row.last_error and "aaaa" in row.last_error, row.last_error
	consumer_config({"topic": topic, "document_type": "ToDo", "event_handler": "spine.demo.noop",
		"accepted_schemas": "aaaa, bbbb"})  # fmt: skip
	actions.apply("replay", [row.name])
	frappe.db.commit()
	processor.process(max_seconds=10)
	assert frappe.db.get_value("Message Log", row.name, "status") == "Processed"


def test_payloads_are_checked_against_the_received_schema(consumer_config, frappe_site):
	import frappe

	from spine import envelope, schema
	from spine.consumer import intake, processor
	from tests.bench.helpers import as_records

	topic = unique("validate")
	consumer_config(
		{"topic": topic, "document_type": "ToDo", "event_handler": "spine.demo.noop", "validate_payload": 1}
	)
	fields = [{"fieldname": "status", "fieldtype": "Select", "options": "Open\nClosed", "reqd": 1}]
	built = schema.build_schema("ToDo", fields, schema.FieldSpec(), topic)
	version = schema.version(built)
	announce = envelope.build(doctype=schema.SCHEMA_DOCTYPE, docname=f"{topic}:ToDo", event="on_update",
		topic=schema.SCHEMA_TOPIC, payload={"topic": topic, "doctype": "ToDo", "version": version, "schema": built},
		origin="o", origin_site="other.site")  # fmt: skip
	good, bad = (
		envelope.build(
			doctype="ToDo",
			docname=n,
			event="on_update",
			topic=topic,
			payload={"name": n, "doctype": "ToDo", "status": s},
			origin="o",
			origin_site="other.site",
			payload_schema=version,
		)  # fmt: skip
		for n, s in (("T-good", "Open"), ("T-bad", "Gone"))
	)
	early = envelope.build(doctype="ToDo", docname="T-early", event="on_update", topic=topic,
		payload={"name": "T-early", "status": "Open"}, origin="o", origin_site="other.site", payload_schema="cccc")  # fmt: skip
	intake.store(
		as_records(schema.SCHEMA_TOPIC, [announce])
	)  # the schema arrives first, as the producer orders it
	intake.store(as_records(topic, [good, bad, early]))
	frappe.db.commit()
	processor.process(max_seconds=10)
	status = dict(frappe.get_all("Message Log", {"topic": topic, "direction": "Inbound"}, ["document_name", "status"],
		as_list=True))  # fmt: skip
	assert status == {"T-good": "Processed", "T-bad": "Invalid", "T-early": "Error"}, status
	reason = frappe.db.get_value("Message Log", {"topic": topic, "document_name": "T-bad"}, "last_error")
	assert "Payload.status must be one of" in reason
	early_reason = frappe.db.get_value(
		"Message Log", {"topic": topic, "document_name": "T-early"}, "last_error"
	)
	assert "has not arrived" in early_reason, "an unknown schema waits for it (retried), it is not lost"
	assert frappe.db.exists(
		"Spine Payload Schema", {"topic": topic, "version": version, "direction": "Received"}
	)
