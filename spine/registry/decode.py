"""A registry-framed Kafka value, from Spine or any producer, as the Spine envelope its handlers get.
Plain Python.

Spine's own "Registry JSON Schema" messages carry their Spine header in the Kafka header
``spine-header``: the envelope is that header and the JSON payload, so its signature still verifies.
Another producer's message (confluent-kafka's ``JSONSerializer`` or ``AvroSerializer``, a Java or Go
client) is resolved through the registry: the writer's schema by its id, the payload decoded with it
(JSON as it is; Avro with ``fastavro``). Its DocType is, in this order, the ``spine-doctype`` header,
the DocType of a ``frappe.<DocType>.<event>`` CloudEvents type (``ce_type``, binary mode), any other
``ce_type`` itself, the JSON Schema's ``title``, or the Avro record's name: what a Spine Consumer Config
row names to handle it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

from spine import cloudevents, envelope
from spine.errors import MalformedMessage
from spine.registry import framing
from spine.registry.client import RegistryClient, UnknownSchema

SPINE_HEADER = "spine-header"
REGISTRY_EVENT = "registry"  # Header.Event of another producer's message that says no event


def envelope_body(
	value: bytes | None,
	headers: Mapping[str, str],
	key: str | None,
	topic: str,
	client: RegistryClient | None,
) -> dict[str, Any] | None:
	"""The envelope body of a registry-framed ``value``; None when it is not framed. Raises
	``MalformedMessage`` (with the reason, the message is stored as Invalid) or ``Unavailable`` (the
	registry did not answer: the caller tries again later, nothing is dropped)."""
	found = framing.unframe(value)
	if found is None:
		return None
	schema_id, data = found
	if headers.get(SPINE_HEADER):
		try:
			return {"Header": json.loads(headers[SPINE_HEADER]), "Payload": json.loads(data), "Retry": {}}
		except ValueError as e:
			raise MalformedMessage(
				f"a registry-framed Spine message whose header or payload is not JSON: {e}"
			) from None
	if client is None:
		raise MalformedMessage(
			f"a registry-framed message (schema id {schema_id}) and this site's kafka block names no schema "
			'registry: add "spine.schema.registry.url", then Replay this entry'
		)
	try:
		kind, text = client.schema(schema_id)
	except UnknownSchema as e:
		raise MalformedMessage(f"schema id {schema_id} is not in the registry at {client.url}: {e}") from None
	payload, named = _payload(kind, text, data, schema_id)
	if not isinstance(payload, dict):
		raise MalformedMessage(
			f"the payload of schema {schema_id} is a {type(payload).__name__}, not an object"
		)
	ce_type = headers.get("ce_type") or ""
	doctype, event = headers.get(envelope.HEADER_DOCTYPE), headers.get(envelope.HEADER_EVENT)
	if (
		not doctype
		and ce_type.startswith(cloudevents.TYPE_PREFIX)
		and "." in ce_type[len(cloudevents.TYPE_PREFIX) :]
	):
		doctype, _, event = ce_type.removeprefix(cloudevents.TYPE_PREFIX).rpartition(".")
	doctype = doctype or ce_type or named
	if not doctype:
		raise MalformedMessage(
			f"a registry-framed message (schema {schema_id}) says no DocType: send a spine-doctype or ce_type "
			"header, or give the schema a title (JSON Schema) or a name (Avro)"
		)
	message_id = headers.get(envelope.HEADER_MESSAGE_ID) or headers.get("ce_id")
	header = {
		"Origin": headers.get("ce_source") or headers.get(envelope.HEADER_ORIGIN_SITE) or "schema registry",
		"OriginSite": headers.get(envelope.HEADER_ORIGIN_SITE) or headers.get("ce_source"),
		"Timestamp": headers.get("ce_time"),
		"DocType": doctype,
		"Event": event or REGISTRY_EVENT,
		"Topic": topic,
		"MessageId": message_id,
		"SchemaVersion": 2 if message_id else 1,
		"DocName": headers.get(envelope.HEADER_DOCNAME) or headers.get("ce_subject") or _name(payload) or key,
		"RegistrySchemaId": schema_id,
	}
	return {"Header": {k: v for k, v in header.items() if v is not None}, "Payload": payload, "Retry": {}}


def _payload(kind: str, text: str, data: bytes, schema_id: int) -> tuple[Any, str | None]:
	"""(decoded payload, the schema's title or record name)."""
	if kind not in ("JSON", "AVRO"):  # a Protobuf schema's text is not JSON: say what it is
		raise MalformedMessage(f"schema {schema_id} is {kind}; Spine reads JSON Schema and Avro messages")
	try:
		schema = json.loads(text)
	except ValueError:
		raise MalformedMessage(f"schema {schema_id} in the registry is not JSON") from None
	if kind == "JSON":
		try:
			return json.loads(data), (schema.get("title") if isinstance(schema, dict) else None)
		except ValueError as e:
			raise MalformedMessage(f"the payload of JSON Schema {schema_id} is not JSON: {e}") from None
	if kind == "AVRO":
		import fastavro

		try:
			parsed = fastavro.parse_schema(schema)
			record = fastavro.schemaless_reader(io.BytesIO(data), parsed)
		except Exception as e:
			raise MalformedMessage(f"the payload does not decode with Avro schema {schema_id}: {e}") from None
		name = schema.get("name") if isinstance(schema, dict) else None
		return envelope.to_json_compatible(record), name.rsplit(".", 1)[-1] if name else None


def _name(payload: Mapping[str, Any]) -> str | None:
	name = payload.get("name")
	return str(name) if name not in (None, "") else None
