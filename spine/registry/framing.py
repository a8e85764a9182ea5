"""The Confluent wire format: a magic byte 0, the schema id as 4 bytes big-endian, then the serialized
payload (JSON text for JSON Schema, Avro's binary encoding for Avro). Plain Python."""

from __future__ import annotations

import struct

MAGIC = 0
WIRE_FORMAT = "registry-json"  # Header.WireFormat of a Spine event to publish framed for the registry
_HEAD = struct.Struct(">bI")


def frame(schema_id: int, payload: bytes) -> bytes:
	"""``payload`` framed for ``schema_id``."""
	return _HEAD.pack(MAGIC, schema_id) + payload


def unframe(value: bytes | None) -> tuple[int, bytes] | None:
	"""(schema id, payload) of a framed value; None when ``value`` is not framed (a Spine JSON envelope
	begins with ``{``)."""
	if not value or len(value) < _HEAD.size or value[0] != MAGIC:
		return None
	_, schema_id = _HEAD.unpack_from(value)
	return schema_id, bytes(value[_HEAD.size :])
