"""A Spine envelope as a registry-framed Kafka record: its payload's schema registered under the
subject (the compatibility set first), the payload checked against it, then framed; the envelope's
header travels in the ``spine-header`` Kafka header. Plain Python: the relay's registry path, and
what the interop tests run against a real registry."""

from __future__ import annotations

import json
from collections.abc import Mapping
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


def framed(
	body: Mapping[str, Any],
	schema_text: str,
	subject: str,
	client: RegistryClient,
	compatibility: str | None = None,
) -> tuple[bytes, list[tuple[str, bytes]]]:
	"""(value, extra headers) of ``body`` framed for ``subject``. Raises ``PayloadMismatch``, or the
	registry's ``Refused`` / ``Unavailable``."""
	if not fits(body["Payload"], schema_text):
		raise PayloadMismatch(first_error(body["Payload"], json.loads(schema_text)))
	if compatibility:
		client.set_compatibility(subject, compatibility)
	schema_id = client.register(subject, schema_text)
	value = framing.frame(
		schema_id, json.dumps(body["Payload"], separators=(",", ":"), ensure_ascii=False).encode()
	)
	return value, [(SPINE_HEADER, json.dumps(body["Header"], separators=(",", ":")).encode())]
