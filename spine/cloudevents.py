"""CloudEvents (1.0) and Spine: every message Spine publishes also describes itself in the CloudEvents
Kafka protocol binding's *binary mode* (``ce_*`` headers beside the unchanged body), and a message
another producer sends in *structured mode* (the event as a JSON object, ``content-type:
application/cloudevents+json``) is read as a Spine envelope. Plain Python.

The mapping (README, "Spine and the rest of your Kafka cluster"):

=================  ===========================================================
CloudEvents        Spine
=================  ===========================================================
``id``             ``Header.MessageId``
``source``         ``Header.OriginSite`` (the publishing site)
``type``           ``frappe.<DocType>.<event>`` (another type: the DocType is the type itself)
``time``           ``Header.Timestamp``
``subject``        ``Header.DocName``
``partitionkey``   the Kafka key, ``<DocType>:<name>`` (the binding's key mapping)
``data``           ``Payload``
=================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SPEC_VERSION = "1.0"
STRUCTURED = "application/cloudevents+json"
TYPE_PREFIX = "frappe."
FOREIGN_EVENT = "cloudevent"  # Header.Event of a CloudEvent whose type is not frappe.<DocType>.<event>


def event_type(doctype: str, event: str) -> str:
	return f"{TYPE_PREFIX}{doctype}.{event}"


def binary_headers(
	*,
	message_id: str | None,
	origin_site: str | None,
	doctype: str,
	event: str,
	docname: str | None,
	time: str | None,
	key: str,
	content_type: str = "application/json",
) -> list[tuple[str, bytes]]:
	"""The ``ce_*`` Kafka headers (and ``content-type``) of a Spine message, binary mode."""
	pairs = [
		("ce_specversion", SPEC_VERSION),
		("ce_id", message_id),
		("ce_source", origin_site),
		("ce_type", event_type(doctype, event)),
		("ce_time", time),
		("ce_subject", docname),
		("ce_partitionkey", key),
		("content-type", content_type),
	]
	return [(k, v.encode()) for k, v in pairs if v]


def is_structured(body: Mapping[str, Any], content_type: str | None = None) -> bool:
	"""Whether a decoded message is a CloudEvent in structured mode (by its content type, or, without
	one, by its required attributes)."""
	if content_type and content_type.split(";")[0].strip().lower() == STRUCTURED:
		return True
	return "specversion" in body and "type" in body and "id" in body and "Header" not in body


def to_envelope_body(event: Mapping[str, Any], topic: str | None = None) -> dict[str, Any]:
	"""A structured-mode CloudEvent as a Spine envelope body: what a handler gets. Raises ``ValueError``
	with the reason when it is not a CloudEvent Spine can take (its data must be a JSON object)."""
	for attr in ("specversion", "id", "source", "type"):
		value = event.get(attr)
		if not isinstance(value, str) or not value:
			raise ValueError(f"CloudEvent attribute {attr!r} must be a non-empty string (got {value!r:.60})")
	if not str(event["specversion"]).startswith("1."):
		raise ValueError(f"CloudEvents specversion {event['specversion']} is not 1.x")
	data = event.get("data")
	if data is None:
		data = {}
	if not isinstance(data, dict):
		raise ValueError(
			f"CloudEvent data must be a JSON object to become a Payload (got {type(data).__name__})"
		)
	doctype, _, rest = event["type"].removeprefix(TYPE_PREFIX).rpartition(".")
	if not event["type"].startswith(TYPE_PREFIX) or not doctype:
		doctype, rest = event["type"], FOREIGN_EVENT
	header = {
		"Origin": event["source"],
		"OriginSite": event["source"],
		"Timestamp": event.get("time"),
		"DocType": doctype,
		"Event": rest,
		"Topic": topic,
		"MessageId": event["id"],
		"SchemaVersion": 2,
		"DocName": event.get("subject")
		or (str(data["name"]) if data.get("name") not in (None, "") else None),
		"CloudEvent": {k: v for k, v in event.items() if k != "data" and k != "data_base64"},
	}
	return {"Header": {k: v for k, v in header.items() if v is not None}, "Payload": data, "Retry": {}}
