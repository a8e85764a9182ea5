"""A Spine envelope as a registry-framed Kafka record: its payload's schema registered under the
subject (the compatibility set first), the payload checked against it, then framed; the envelope's
header travels in the ``spine-header`` Kafka header. Plain Python: the relay's registry path, and
what the interop tests run against a real registry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spine.registry import framing
from spine.registry.client import RegistryClient
from spine.registry.decode import SPINE_HEADER
from spine.registry.schemas import for_registry
from spine.schema import first_error, fits


class PayloadMismatch(ValueError):
	"""The payload does not fit the schema registered for it (``str()`` says where)."""


def registry_schema_text(schema: Mapping[str, Any]) -> str:
	"""The text Spine registers for a payload schema (one text per shape: the registry's identity)."""
	return json.dumps(for_registry(schema), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Parts:
	"""An envelope's header and payload, each with its JSON text."""

	header: dict[str, Any]
	header_text: str
	payload: Any
	payload_text: str


_decoder = json.JSONDecoder()
_HEADER, _PAYLOAD = '{"Header":', ',"Payload":'


def parts(text: str) -> Parts:
	"""The header and payload of the envelope ``text`` (a Message Log row's message). As Spine writes it
	(``{"Header":…,"Payload":…``) each text is cut out where the decoder ends its value, not written
	again; any other layout is parsed and written."""
	if text.startswith(_HEADER):
		header, end = _decoder.raw_decode(text, len(_HEADER))
		if text.startswith(_PAYLOAD, end):
			start = end + len(_PAYLOAD)
			payload, stop = _decoder.raw_decode(text, start)
			return Parts(header, text[len(_HEADER) : end], payload, text[start:stop])
	body = json.loads(text)
	return Parts(body["Header"], json.dumps(body["Header"], separators=(",", ":"), ensure_ascii=False),
		body["Payload"], json.dumps(body["Payload"], separators=(",", ":"), ensure_ascii=False))  # fmt: skip


def framed(
	envelope: Parts,
	schema_text: str,
	subject: str,
	client: RegistryClient,
	compatibility: str | None = None,
) -> tuple[bytes, list[tuple[str, bytes]]]:
	"""(value, extra headers) of ``envelope`` framed for ``subject``: the payload's and the header's own
	JSON text. Raises ``PayloadMismatch``, or the registry's ``Refused`` / ``Unavailable``."""
	if not fits(envelope.payload, schema_text):
		raise PayloadMismatch(first_error(envelope.payload, json.loads(schema_text)))
	if compatibility:
		client.set_compatibility(subject, compatibility)
	schema_id = client.register(subject, schema_text)
	value = framing.frame(schema_id, envelope.payload_text.encode())
	return value, [(SPINE_HEADER, envelope.header_text.encode())]
