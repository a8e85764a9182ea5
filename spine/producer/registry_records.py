"""The relay's side of the schema registry: an outbox row captured for a "Registry JSON Schema" route
becomes a registry-framed Kafka record (magic byte, schema id, the payload's JSON), its Spine header
in the ``spine-header`` Kafka header (so Spine consumers verify its signature as usual).

The payload's JSON Schema (the one recorded in Spine Payload Schema when its version was first
published) is registered under the subject ``<topic>-value``, the route's compatibility set on the
subject first. When the registry refuses it (an incompatible DocType change) or does not answer, the
row is not published: it stays Pending with the reason (``REGISTRY_REFUSED`` / ``REGISTRY_UNAVAILABLE``,
read by ``spine.kafka.broker_errors``) and is tried again on the relay's schedule, so it goes out
once the operator resolves it. Nothing is lost and nothing is marked Failed.
"""

from __future__ import annotations

import json

import frappe

from spine import logs
from spine.kafka.broker_errors import REGISTRY_MISSING, REGISTRY_REFUSED, REGISTRY_UNAVAILABLE
from spine.kafka.publisher import OutRecord
from spine.registry import framing, publish
from spine.registry.client import Refused, RegistryError, Unavailable
from spine.settings import broker, config_cache

log = logs.logger(__name__)
MARK = f'"WireFormat":"{framing.WIRE_FORMAT}"'
_compatibility_set: dict[tuple[str, str], str] = {}  # (registry url, subject) -> level set by this process


class Held(Exception):
	"""The row cannot be published yet; ``str()`` is the error stored on it."""


def wanted(row) -> bool:
	"""Whether an outbox row is to be published framed for the registry (one substring test)."""
	return MARK in row.message


_NO_CLIENT = object()


def record(row, base: OutRecord, client=_NO_CLIENT) -> OutRecord:
	"""``base`` (the row's record as Spine JSON) framed for the registry; raises ``Held`` with the
	reason when it cannot be yet. ``client``: the site's registry client, when the caller has it."""
	if client is _NO_CLIENT:
		client = broker.registry()
	if client is None:
		raise Held(
			f"{REGISTRY_MISSING}: the Spine Producer Config row for {row.document_type} on {row.topic} says "
			'"Registry JSON Schema", and the kafka block names no "spine.schema.registry.url"; add it (or set '
			"the row's wire format to Spine JSON): the event goes out then"
		)
	subject = f"{row.topic}-value"
	envelope = publish.parts(row.message)
	version = envelope.header.get("PayloadSchema")
	schema = _schema(row.topic, row.document_type, version)
	level = _compatibility(client, subject, row)
	try:
		value, extra = publish.framed(envelope, schema, subject, client, level)
	except publish.PayloadMismatch as e:
		raise Held(
			f"{REGISTRY_REFUSED}: the payload does not fit the schema registered for it ({e}); a producer "
			"handler that adds keys must publish them as fields of the DocType (or use Spine JSON)"
		) from None
	except Refused as e:
		raise Held(
			f"{REGISTRY_REFUSED}: {e} for subject {subject} (schema {version} of {row.document_type}); the event "
			"is held, not lost: publish a compatible shape (the row's published fields), use a new topic, or "
			"change the row's compatibility deliberately; it goes out then"
		) from None
	except Unavailable as e:
		raise Held(f"{REGISTRY_UNAVAILABLE}: {e}; the event is held and sent once it answers") from None
	except RegistryError as e:
		raise Held(f"{REGISTRY_REFUSED}: {e}") from None
	return OutRecord(
		ref=base.ref, topic=base.topic, key=base.key, value=value, headers=[*base.headers, *extra]
	)


_schema_texts: dict[tuple[str, str, str, str | None], str] = {}  # a version's schema never changes


def _schema(topic: str, doctype: str, version: str | None) -> str:
	"""The JSON Schema text of ``version``, as Spine recorded it when the version was first published
	(read once per process: a version names one shape)."""
	key = (frappe.local.site, topic, doctype, version)
	if key not in _schema_texts:
		_schema_texts[key] = _recorded_schema(topic, doctype, version)
	return _schema_texts[key]


def _recorded_schema(topic: str, doctype: str, version: str | None) -> str:
	stored = frappe.db.get_value(
		"Spine Payload Schema",
		{"topic": topic, "document_type": doctype, "version": version, "direction": "Published"},
		"schema",
	)
	if not stored:
		raise Held(
			f"{REGISTRY_REFUSED}: schema {version} of {doctype} on {topic} is not recorded on this site (Spine "
			"Payload Schema); save the document again to publish it with its current schema"
		)
	return publish.registry_schema_text(json.loads(stored))


def _compatibility(client, subject: str, row) -> str | None:
	"""The compatibility the row's route asks for now, when this process has not set it on the subject."""
	level = next(
		(r.get("compatibility") for r in config_cache.producer_routes().get(row.document_type, [])
			if r["topic"] == row.topic),
		None,
	)  # fmt: skip
	if not level or _compatibility_set.get((client.url, subject)) == level:
		return None
	_compatibility_set[(client.url, subject)] = level
	log.info(
		"Spine on %s: schema registry subject %s set to %s compatibility", frappe.local.site, subject, level
	)
	return level


def as_records(rows: list, bases: list[OutRecord]) -> tuple[list[OutRecord | None], dict[int, str]]:
	"""The records to publish (None where a row is held) and, per index, why it is held. By the order
	rule, the later rows of a held row's document are held behind it (not sent ahead of it)."""
	out: list[OutRecord | None] = []
	held: dict[int, str] = {}
	held_keys: dict[str, int] = {}
	client = _NO_CLIENT
	for i, (row, base) in enumerate(zip(rows, bases, strict=True)):
		if row.kafka_key in held_keys:
			out.append(None)
			first = held_keys[row.kafka_key]
			name, reason = held[first].split(": ", 1)
			held[i] = f"{name}: waits behind Message Log {rows[first].name} of this document, held: {reason}"
			continue
		if not wanted(row):
			out.append(base)
			continue
		if client is _NO_CLIENT:  # the site's settings read once per pass, not per row
			client = broker.registry()
		try:
			out.append(record(row, base, client))
		except Held as e:
			out.append(None)
			held[i] = str(e)
			held_keys[row.kafka_key] = i
	return out, held
