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
