"""What the intake makes of registry-framed messages of other producers (a plain fake stands in for
the registry: this is the decoding logic; the real registry is in tests/integration/test_ecosystem.py)."""

from __future__ import annotations

import json

import pytest

from spine.errors import MalformedMessage
from spine.registry import decode, framing


class FakeRegistry:
	url = "http://registry.test"

	def __init__(self, schemas: dict[int, tuple[str, str]]):
		self.schemas = schemas

	def schema(self, schema_id: int) -> tuple[str, str]:
		return self.schemas[schema_id]


def test_a_json_schema_message_becomes_an_envelope_named_by_its_title():
	registry = FakeRegistry({7: ("JSON", json.dumps({"title": "ToDo", "type": "object"}))})
	value = framing.frame(7, json.dumps({"name": "T-1", "description": "x"}).encode())
	body = decode.envelope_body(value, {}, "T-1", "todos", registry)
	assert body["Header"]["DocType"] == "ToDo" and body["Header"]["DocName"] == "T-1"
	assert body["Payload"] == {"name": "T-1", "description": "x"}


def test_a_protobuf_message_is_refused_saying_what_it_is():
	registry = FakeRegistry({9: ("PROTOBUF", 'syntax = "proto3"; message Order { string name = 1; }')})
	with pytest.raises(MalformedMessage, match="schema 9 is PROTOBUF; Spine reads JSON Schema and Avro"):
		decode.envelope_body(framing.frame(9, b"\x0a\x03O-1"), {}, "O-1", "orders", registry)


def test_a_value_that_is_not_framed_is_left_to_the_envelope_parser():
	assert decode.envelope_body(b'{"Header": {}}', {}, None, "t", FakeRegistry({})) is None


def test_an_envelopes_parts_are_its_own_text_whatever_its_values_hold():
	"""The relay frames a row's payload from the row's own text: cut out exactly, and the same as
	parsing, for any values (a key named Payload, quotes and braces in strings, non-ASCII text)."""
	from spine import envelope
	from spine.registry.publish import parts

	payload = {"description": 'a "quoted" ,"Payload": {brace}', "Payload": {"x": [1, 2]}, "note": "café ✓"}
	env = envelope.build(doctype="ToDo", event="on_update", docname="T-1", topic="t", payload=payload,
		origin="o", origin_site="s", payload_schema="v1")  # fmt: skip
	text = envelope.encode(env).decode()
	got = parts(text)
	body = json.loads(text)
	assert got.header == body["Header"] and got.payload == body["Payload"]
	assert json.loads(got.header_text) == body["Header"] and json.loads(got.payload_text) == body["Payload"]
	assert got.payload_text in text, "cut out of the row's text, not written again"
	spaced = json.dumps(body, indent=1)  # another writer's layout: parsed instead
	assert (
		parts(spaced).payload == body["Payload"] and json.loads(parts(spaced).payload_text) == body["Payload"]
	)
