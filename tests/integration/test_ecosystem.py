"""Spine's messages read, and other producers' messages taken, by clients nobody here wrote, on Apache
Kafka with Apicurio Registry 3.3.3 and a standalone Kafka Connect worker (all three from Maven
Central, started by the fixtures): confluent-kafka's JSONDeserializer with SchemaRegistryClient, the
CloudEvents SDK's Kafka binding, Kafka Connect's JsonConverter; and Spine's intake decoding what
confluent-kafka's JSONSerializer / AvroSerializer and the CloudEvents SDK wrote. The same code runs
on a site in tests/bench/test_registry.py."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from spine import cloudevents, envelope
from spine.registry import decode, publish
from spine.registry.client import Refused, RegistryClient, Unavailable
from spine.schema import build_schema, parse_field_spec
from tests.brokers import KIND
from tests.ecosystem import clients

pytestmark = pytest.mark.skipif(KIND == "noida", reason="interop with stock clients runs on Apache Kafka")

FIELDS = [
	{"fieldname": "description", "fieldtype": "Data"},
	{"fieldname": "priority", "fieldtype": "Select", "options": "Low\nMedium\nHigh"},
]


def _topic(kafka_bootstrap: str, prefix: str) -> str:
	from tests.conftest import create_topic

	return create_topic(kafka_bootstrap, partitions=1, prefix=prefix)


def _spine_event(topic: str, n: int) -> envelope.Envelope:
	return envelope.build(doctype="ToDo", docname=f"T-{n}", event="on_update", topic=topic,
		payload={"name": f"T-{n}", "doctype": "ToDo", "description": f"todo {n}", "priority": "Low",
			"modified": "2026-12-07 10:00:00", "docstatus": 0},
		origin="a", origin_site="a.example.com", payload_schema="v1")  # fmt: skip


def _produce(bootstrap: str, topic: str, items: list[tuple[str | None, bytes, list]]) -> None:
	from confluent_kafka import Producer

	p = Producer({"bootstrap.servers": bootstrap})
	for key, value, headers in items:
		p.produce(topic, value=value, key=key, headers=headers)
	assert p.flush(30) == 0


def _read_raw(bootstrap: str, topic: str, count: int) -> list:
	from tests.bench.helpers import read_topic

	return read_topic(bootstrap, topic, count, exact_wait=0.5)


def test_a_registry_aware_consumer_reads_a_spine_topic_with_its_stock_deserializer(kafka_bootstrap, registry):
	topic = _topic(kafka_bootstrap, "reg-json")
	client = RegistryClient({"url": registry.url})
	schema = publish.registry_schema_text(build_schema("ToDo", FIELDS, parse_field_spec(None), topic))
	events = [_spine_event(topic, n) for n in range(3)]
	items = []
	for env in events:
		value, extra = publish.framed(
			publish.parts(envelope.encode(env).decode()), schema, f"{topic}-value", client, "BACKWARD"
		)
		items.append((env.key, value, env.headers() + extra))
	_produce(kafka_bootstrap, topic, items)
	got = clients.run("read-registry-json", kafka_bootstrap, registry.url, topic, "3")
	assert got == [e.payload for e in events], "the stock JSONDeserializer gives back each payload"
	assert client.compatibility(f"{topic}-value") == "BACKWARD"


def test_an_incompatible_change_is_refused_by_the_registry(registry):
	client = RegistryClient({"url": registry.url})
	subject = f"reg-change-{uuid.uuid4().hex[:6]}-value"
	before = publish.registry_schema_text(build_schema("ToDo", FIELDS, parse_field_spec(None), "t"))
	client.set_compatibility(subject, "BACKWARD")
	client.register(subject, before)
	added = [*FIELDS, {"fieldname": "note", "fieldtype": "Data"}]
	client.register(
		subject, publish.registry_schema_text(build_schema("ToDo", added, parse_field_spec(None), "t"))
	)
	required = [
		*FIELDS,
		{"fieldname": "note", "fieldtype": "Data"},
		{"fieldname": "due", "fieldtype": "Data", "reqd": 1},
	]
	with pytest.raises(Refused, match="required"):
		client.register(
			subject, publish.registry_schema_text(build_schema("ToDo", required, parse_field_spec(None), "t"))
		)


def test_a_registry_that_does_not_answer_says_so():
	client = RegistryClient({"url": "http://127.0.0.1:1/apis/ccompat/v7"}, timeout=2)
	with pytest.raises(Unavailable, match="did not answer"):
		client.schema(1)


def test_the_cloudevents_sdk_reads_a_spine_message(kafka_bootstrap):
	topic = _topic(kafka_bootstrap, "ce-binary")
	env = _spine_event(topic, 1)
	_produce(kafka_bootstrap, topic, [(env.key, envelope.encode(env), env.headers())])
	(got,) = clients.run("read-cloudevents", kafka_bootstrap, topic, "1")
	attrs = got["attributes"]
	assert attrs["id"] == env.message_id and attrs["source"] == "a.example.com"
	assert attrs["type"] == "frappe.ToDo.on_update" and attrs["subject"] == "T-1"
	assert attrs["partitionkey"] == "ToDo:T-1" and attrs["specversion"] == "1.0"
	assert got["data"]["Payload"] == env.payload, "the value is Spine's envelope, unchanged"


def test_kafka_connect_lands_a_spine_topic_payload_by_payload(kafka_bootstrap):
	"""A standalone Connect worker, JsonConverter (schemas.enable=false) and ExtractField(Payload):
	what a warehouse connector reads of a Spine topic is each document's payload."""
	from tests.ecosystem.connect import FileSink

	topic = _topic(kafka_bootstrap, "connect")
	events = [_spine_event(topic, n) for n in range(5)]
	_produce(kafka_bootstrap, topic, [(e.key, envelope.encode(e), e.headers()) for e in events])
	sink = FileSink(kafka_bootstrap, topic, extract_field="Payload").start()
	try:
		deadline = time.monotonic() + 120
		while len(sink.lines()) < len(events) and time.monotonic() < deadline:
			time.sleep(1)
	finally:
		sink.stop()
	lines = sink.lines()
	assert len(lines) == len(events), sink.log()
	# FileStreamSink prints each value as Java prints a map; a JDBC or S3 sink writes the same fields
	assert [_java_map(line) for line in lines] == [{k: str(v) for k, v in e.payload.items()} for e in events]


def _java_map(line: str) -> dict[str, str]:
	"""``{a=1, b=x}`` (how Connect's FileStreamSink writes a map value) as a dict of texts."""
	assert line.startswith("{") and line.endswith("}"), line
	return dict(pair.split("=", 1) for pair in line[1:-1].split(", "))


def test_messages_of_stock_serializers_and_structured_cloudevents_become_envelopes(kafka_bootstrap, registry):
	"""One topic each (a subject ``<topic>-value`` holds one kind of schema)."""
	client = RegistryClient({"url": registry.url})
	json_topic, avro_topic, ce_topic = (
		_topic(kafka_bootstrap, p) for p in ("foreign-json", "foreign-avro", "foreign-ce")
	)
	json_schema = json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "title": "Order", "type": "object",
		"properties": {"name": {"type": "string"}, "qty": {"type": "integer"}}})  # fmt: skip
	clients.run("produce-registry", kafka_bootstrap, registry.url, json_topic, "json", json_schema,
		[{"key": "O-1", "value": {"name": "O-1", "qty": 3}}])  # fmt: skip
	avro_schema = json.dumps({"type": "record", "name": "com.example.Shipment",
		"fields": [{"name": "name", "type": "string"}, {"name": "weight", "type": "double"}]})  # fmt: skip
	clients.run("produce-registry", kafka_bootstrap, registry.url, avro_topic, "avro", avro_schema,
		[{"key": "S-1", "value": {"name": "S-1", "weight": 2.5}}])  # fmt: skip
	clients.run("produce-structured", kafka_bootstrap, ce_topic, {
		"attributes": {"type": "frappe.ToDo.on_update", "source": "//service.example.com", "subject": "T-9", "id": "ce-9"},
		"data": {"description": "from a service"}})  # fmt: skip

	def taken(topic: str) -> envelope.Envelope:
		(m,) = _read_raw(kafka_bootstrap, topic, 1)
		headers = {k: v.decode() for k, v in (m.headers() or [])}
		body = decode.envelope_body(m.value(), headers, m.key().decode() if m.key() else None, topic, client)
		if body:
			return envelope.from_body(body)
		return envelope.parse(m.value(), content_type=headers.get("content-type"))

	order, shipment, event = taken(json_topic), taken(avro_topic), taken(ce_topic)
	assert (order.doctype, order.docname, order.payload) == ("Order", "O-1", {"name": "O-1", "qty": 3})
	assert (shipment.doctype, shipment.docname, shipment.payload) == (
		"Shipment",
		"S-1",
		{"name": "S-1", "weight": 2.5},
	)
	assert (event.doctype, event.event, event.docname, event.message_id) == (
		"ToDo",
		"on_update",
		"T-9",
		"ce-9",
	)
	assert event.payload == {"description": "from a service"}
	assert event.body["Header"]["CloudEvent"]["source"] == "//service.example.com"
