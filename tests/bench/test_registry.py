"""A site with a schema registry, on Apache Kafka with Apicurio Registry 3.3.3 (from Maven Central,
started by the fixture): a "Registry JSON Schema" producer row is read by confluent-kafka's stock
JSONDeserializer; a DocType change the registry finds incompatible is held Pending with the registry's
reason (Message Log, spine-status, Desk) and goes out, in order, once the operator changes the row's
compatibility; messages of confluent-kafka's JSONSerializer and structured-mode CloudEvents of other
services are handled by the site's handlers."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.bench.helpers import site_kafka, unique, wait_for
from tests.brokers import KIND
from tests.ecosystem import clients

pytestmark = [
	pytest.mark.slow,
	pytest.mark.skipif(KIND == "noida", reason="the schema registry interop runs on Apache Kafka"),
]

DOCTYPE = "Spine Registry Doc"
DEMO = "spine.demo"


@pytest.fixture(scope="module")
def registry_doctype(frappe_site):
	"""A DocType of two fields, made anew for this module (its shape is changed by a test)."""
	import frappe

	if frappe.db.exists("DocType", DOCTYPE):
		frappe.delete_doc("DocType", DOCTYPE, force=True)
	frappe.get_doc({
		"doctype": "DocType", "name": DOCTYPE, "module": "Spine Adapter", "custom": 1, "autoname": "hash",
		"fields": [
			{"fieldname": "title", "fieldtype": "Data", "label": "Title", "reqd": 1},
			{"fieldname": "qty", "fieldtype": "Int", "label": "Qty"},
		],
		"permissions": [{"role": "System Manager", "read": 1, "write": 1, "create": 1, "delete": 1}],
	}).insert(ignore_permissions=True)  # fmt: skip
	frappe.db.commit()
	yield DOCTYPE
	frappe.delete_doc("DocType", DOCTYPE, force=True)
	frappe.db.commit()


@pytest.fixture
def on_registry(frappe_site, kafka_bootstrap, registry):
	with site_kafka(kafka_bootstrap, **{"spine.schema.registry.url": registry.url}) as conf:
		yield conf


def _drain() -> int:
	from spine.producer import relay

	return relay.drain()


def _outbound(topic: str) -> list:
	import frappe

	return frappe.get_all("Message Log", {"direction": "Outbound", "topic": topic},
		["name", "status", "last_error", "message", "document_name"], order_by="creation, name")  # fmt: skip


def _inbound(topic: str) -> list:
	import frappe

	return frappe.get_all("Message Log", {"direction": "Inbound", "topic": topic},
		["name", "status", "last_error", "message", "document_type", "document_name"], order_by="name")  # fmt: skip


def _registry_row(topic: str, compatibility: str = "BACKWARD") -> dict:
	return {"document_type": DOCTYPE, "topic": topic, "on_insert": 0, "on_update": 1,  # an insert runs on_update too
		"wire_format": "Registry JSON Schema", "compatibility": compatibility}  # fmt: skip


def test_a_registry_route_is_read_by_the_stock_deserializer(
	registry_doctype, routes, on_registry, kafka_bootstrap, registry
):
	import frappe

	topic = unique("reg-read")
	routes(_registry_row(topic))
	docs = [frappe.get_doc({"doctype": DOCTYPE, "title": f"t{n}", "qty": n}).insert() for n in range(3)]
	frappe.db.commit()
	_drain()
	rows = _outbound(topic)
	assert [r.status for r in rows] == ["Published"] * 3, [r.last_error for r in rows]
	got = clients.run("read-registry-json", kafka_bootstrap, registry.url, topic, "3")
	assert [(p["name"], p["title"], p["qty"]) for p in got] == [(d.name, d.title, d.qty) for d in docs]
	assert got == [json.loads(r.message)["Payload"] for r in rows], "the payload Message Log holds"


def test_an_incompatible_doctype_change_is_held_explained_and_released(
	registry_doctype, routes, on_registry, kafka_bootstrap, registry
):
	import frappe

	from spine.desk import status

	topic = unique("reg-change")
	routes(_registry_row(topic))
	doc = frappe.get_doc({"doctype": DOCTYPE, "title": "before", "qty": 1}).insert()
	frappe.db.commit()
	_drain()
	assert [r.status for r in _outbound(topic)] == ["Published"]

	# a required field: data of the old shape does not fit the new one (BACKWARD refuses it)
	dt = frappe.get_doc("DocType", DOCTYPE)
	dt.append("fields", {"fieldname": "due", "fieldtype": "Data", "label": "Due", "reqd": 1})
	dt.save()
	frappe.db.commit()
	doc = frappe.get_doc(DOCTYPE, doc.name)  # as the next request would (a loaded doc keeps its meta)
	doc.update({"qty": 2, "due": "soon"})
	doc.save()
	frappe.db.commit()
	doc.qty = 3
	doc.save()
	frappe.db.commit()
	_drain()
	_drain()  # tried again: still refused, still Pending
	held = _outbound(topic)[1:]
	assert [r.status for r in held] == ["Pending", "Pending"], [r.last_error for r in held]
	assert held[0].last_error.startswith("REGISTRY_REFUSED:"), held[0].last_error
	assert f"{topic}-value" in held[0].last_error and "compatibility" in held[0].last_error
	assert held[1].last_error.startswith(f"REGISTRY_REFUSED: waits behind Message Log {held[0].name}"), held[
		1
	].last_error
	said = status.problems(status.collect(with_lag=False))
	assert any("held by the schema registry" in p and topic in p for p in said), said
	_desk_shows(held[0].name)

	# the operator decides the change is meant: the row's compatibility NONE
	routes(_registry_row(topic, compatibility="NONE"))
	_drain()
	rows = _outbound(topic)
	assert [r.status for r in rows] == ["Published"] * 3, [r.last_error for r in rows]
	got = clients.run("read-registry-json", kafka_bootstrap, registry.url, topic, "3")
	assert [p["qty"] for p in got] == [1, 2, 3], "released in the order they were saved"
	assert got[1]["due"] == "soon"


def _desk_shows(name: str) -> None:
	"""The held row's form in a real browser says why (skipped with its reason where Desk cannot run)."""
	from tests.bench import test_desk

	missing = test_desk._missing()
	if missing:
		print(f"Desk check of the held row not run: {missing}")
		return
	from selenium.webdriver.common.by import By

	with test_desk.desk_session() as (driver, base, shots):
		driver.get(f"{base}/app/message-log/{name}")
		wait_for(lambda: "REGISTRY_REFUSED" in driver.find_element(By.TAG_NAME, "body").text, 60,
			what=lambda: driver.find_element(By.TAG_NAME, "body").text[-1500:])  # fmt: skip
		time.sleep(0.5)
		shot = os.path.join(shots, "message-log-held-by-registry.png")
		driver.save_screenshot(shot)
		print(f"screenshot of the held row: {shot}")


def test_a_site_handles_stock_serializer_messages_and_structured_cloudevents(
	consumer_config, on_registry, kafka_bootstrap, registry, reset_calls
):
	from spine.consumer import intake, processor
	from spine.kafka.records import to_record
	from tests.bench.helpers import calls, read_topic

	topic, ce_id = unique("reg-foreign"), unique("ce")  # a message id is stored once per site
	consumer_config({"topic": topic, "document_type": "ToDo", "event_handler": f"{DEMO}.record_call"})
	schema = json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "title": "ToDo", "type": "object",
		"properties": {"name": {"type": "string"}, "description": {"type": "string"}}})  # fmt: skip
	clients.run("produce-registry", kafka_bootstrap, registry.url, topic, "json", schema,
		[{"key": "TD-1", "value": {"name": "TD-1", "description": "from a Go service"}}])  # fmt: skip
	clients.run("produce-structured", kafka_bootstrap, topic, {
		"attributes": {"type": "frappe.ToDo.on_update", "source": "//svc.example.com", "subject": "TD-2", "id": ce_id},
		"data": {"name": "TD-2", "description": "a CloudEvent"}})  # fmt: skip
	records = [
		to_record(m) for m in read_topic(kafka_bootstrap, topic, 2)
	]  # as the dispatcher hands them over
	stored = intake.store(records)
	import frappe

	frappe.db.commit()
	assert stored == 2, [
		(r.document_name, r.status, r.last_error, (r.message or "")[:300]) for r in _inbound(topic)
	]
	processor.process(max_seconds=10)
	rows = sorted(_inbound(topic), key=lambda r: r.document_name or "")
	assert [(r.document_type, r.document_name, r.status) for r in rows] == [
		("ToDo", "TD-1", "Processed"),
		("ToDo", "TD-2", "Processed"),
	], [r.get("last_error") for r in rows]
	assert json.loads(rows[0].message)["Payload"] == {"name": "TD-1", "description": "from a Go service"}
	assert json.loads(rows[1].message)["Payload"]["description"] == "a CloudEvent"
	assert ce_id in calls(), "the handler got the CloudEvent by its id"
