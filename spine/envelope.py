"""Spine's wire format: build and parse the JSON envelope, its Kafka key and headers.

The envelope is a superset of the original Spine Adapter's::

    {"Header": {"Origin", "Timestamp", "DocType", "Event", "Topic",        # original keys
                "MessageId", "SchemaVersion", "DocName", "OriginSite"},    # added by Spine
     "Payload": {...document as a dict...},
     "Retry": {}}                                                          # original, kept empty

so handlers written for the original keep working and messages it produced are accepted.
Plain Python: importing this module never imports Frappe.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spine import cloudevents
from spine.errors import MalformedMessage

SCHEMA_VERSION = 2
"""Version 1 is the original Spine Adapter's envelope (no MessageId); 2 is Spine's."""

DEFAULT_MAX_MESSAGE_BYTES = 1_048_576

HEADER_MESSAGE_ID = "spine-message-id"
HEADER_SCHEMA_VERSION = "spine-schema-version"
HEADER_DOCTYPE = "spine-doctype"
HEADER_DOCNAME = "spine-docname"
HEADER_EVENT = "spine-event"
HEADER_ORIGIN_SITE = "spine-origin-site"

_REQUIRED_HEADER_TEXT = ("DocType", "Event")


@dataclass(frozen=True)
class Envelope:
	"""One event on the wire. ``body`` is the whole decoded JSON object handlers receive."""

	doctype: str
	event: str
	payload: dict[str, Any]
	message_id: str | None = None
	docname: str | None = None
	topic: str | None = None
	origin: str | None = None
	origin_site: str | None = None
	timestamp: str | None = None
	schema_version: int = 1
	payload_schema: str | None = None
	body: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

	@property
	def key(self) -> str:
		"""The Kafka key: events of one document share it, so Kafka keeps them in one partition, in order."""
		return document_key(self.doctype, self.docname or "")

	def headers(self, cloud_events: bool = True) -> list[tuple[str, bytes]]:
		"""Kafka headers carrying the routing facts, so consumers can route without decoding the body;
		with ``cloud_events``, the CloudEvents binary-mode ``ce_*`` headers too (``spine.cloudevents``)."""
		pairs = [
			(HEADER_MESSAGE_ID, self.message_id),
			(HEADER_SCHEMA_VERSION, str(self.schema_version)),
			(HEADER_DOCTYPE, self.doctype),
			(HEADER_DOCNAME, self.docname),
			(HEADER_EVENT, self.event),
			(HEADER_ORIGIN_SITE, self.origin_site),
		]
		found = [(k, v.encode()) for k, v in pairs if v is not None]
		if cloud_events:
			found += cloudevents.binary_headers(message_id=self.message_id, origin_site=self.origin_site,
				doctype=self.doctype, event=self.event, docname=self.docname, time=self.timestamp, key=self.key)  # fmt: skip
		return found


def document_key(doctype: str, docname: str) -> str:
	"""Kafka key and ordering key of a document: ``"<DocType>:<name>"``."""
	return f"{doctype}:{docname}"


def new_message_id() -> str:
	"""A globally unique message id (32 hex characters)."""
	return uuid.uuid4().hex


def build(
	*,
	doctype: str,
	docname: str,
	event: str,
	topic: str,
	payload: Mapping[str, Any],
	origin: str,
	origin_site: str,
	message_id: str | None = None,
	timestamp: datetime.datetime | None = None,
	payload_schema: str | None = None,
	extra_header: Mapping[str, Any] | None = None,
) -> Envelope:
	"""A new Spine envelope for one document event; ``payload`` is usually ``doc.as_dict()``.

	The payload is normalised to plain JSON types right away (see ``to_json_compatible``), so
	the envelope serialises the same way every time.
	"""
	body_payload = to_json_compatible(dict(payload))
	ts = timestamp_text(timestamp)
	mid = message_id or new_message_id()
	header = {
		"Origin": origin,
		"Timestamp": ts,
		"DocType": doctype,
		"Event": event,
		"Topic": topic,
		"MessageId": mid,
		"SchemaVersion": SCHEMA_VERSION,
		"DocName": docname,
		"OriginSite": origin_site,
	}
	if payload_schema:
		header["PayloadSchema"] = payload_schema  # version of the route's payload schema (spine.schemas)
	if extra_header:  # request/reply: CorrelationId, ReplyTo, Deadline, ...
		header.update({k: v for k, v in extra_header.items() if k not in header})
	body = {"Header": header, "Payload": body_payload, "Retry": {}}
	return Envelope(
		doctype=doctype,
		event=event,
		payload=body_payload,
		message_id=mid,
		docname=docname,
		topic=topic,
		origin=origin,
		origin_site=origin_site,
		timestamp=ts,
		schema_version=SCHEMA_VERSION,
		payload_schema=payload_schema,
		body=body,
	)


def timestamp_text(moment: datetime.datetime | None = None) -> str:
	"""``Header.Timestamp``: ISO 8601 with the UTC offset (``2026-11-22T14:03:07.123456+05:30``), so
	a reader anywhere knows the instant. A naive ``moment`` is taken as this machine's local time.
	The original adapter's form (``2026-11-22 14:03:07.123456``, no zone) is still accepted on parse."""
	moment = moment or datetime.datetime.now()
	return (moment if moment.tzinfo else moment.astimezone()).isoformat()


def encode(envelope: Envelope) -> bytes:
	"""The envelope as compact UTF-8 JSON bytes, ready to be a Kafka message value."""
	return json.dumps(
		envelope.body, default=_json_default, separators=(",", ":"), ensure_ascii=False
	).encode()


def parse(
	value: bytes | str | None,
	*,
	max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
	content_type: str | None = None,
	topic: str | None = None,
) -> Envelope:
	"""Decode a Kafka message value into an Envelope.

	Accepts Spine's envelope, the original Spine Adapter's (``schema_version`` 1, no message id) and a
	CloudEvent in structured mode (``content_type`` ``application/cloudevents+json``, or an object
	with CloudEvents' attributes; its envelope says where it came from in ``Header.CloudEvent``).
	Anything else raises ``MalformedMessage`` with a readable reason; no other exception escapes,
	whatever the input.
	"""
	if value is None:
		raise MalformedMessage("message has no value (a tombstone or an empty record)")
	size = len(value.encode() if isinstance(value, str) else value)
	if size > max_bytes:
		raise MalformedMessage(f"message is {size:,} bytes; the limit is {max_bytes:,} bytes")
	if isinstance(value, bytes | bytearray):
		try:
			text = bytes(value).decode("utf-8")
		except UnicodeDecodeError as e:
			raise MalformedMessage(f"message is not valid UTF-8 (byte {e.start}: {e.reason})") from None
	else:
		text = value
	try:
		body = json.loads(text)
		if isinstance(body, str):  # the original adapter's producers sometimes double-encoded
			body = json.loads(body)
	except (ValueError, RecursionError) as e:
		raise MalformedMessage(f"message is not JSON: {_short(e)}") from None
	if not isinstance(body, dict):
		raise MalformedMessage(f"message is JSON but not an object (got {type(body).__name__})")
	if cloudevents.is_structured(body, content_type):
		try:
			body = cloudevents.to_envelope_body(body, topic)
		except ValueError as e:
			raise MalformedMessage(f"message is a CloudEvent Spine cannot take: {e}") from None
	return from_body(body)


def from_body(body: Mapping[str, Any]) -> Envelope:
	"""Validate an already-decoded envelope object; raises ``MalformedMessage`` if it is not one."""
	header = body.get("Header")
	if not isinstance(header, dict):
		raise MalformedMessage("envelope has no 'Header' object")
	payload = body.get("Payload")
	if not isinstance(payload, dict):
		got = "missing" if payload is None else type(payload).__name__
		raise MalformedMessage(f"envelope 'Payload' must be an object (got {got})")
	for key in _REQUIRED_HEADER_TEXT:
		val = header.get(key)
		if not isinstance(val, str) or not val.strip():
			raise MalformedMessage(f"envelope Header.{key} must be a non-empty string (got {val!r:.60})")
	optional = {
		k: header.get(k) for k in ("MessageId", "DocName", "Topic", "Origin", "OriginSite", "PayloadSchema")
	}
	for key, val in optional.items():
		if val is not None and not isinstance(val, str):
			raise MalformedMessage(f"envelope Header.{key} must be a string (got {type(val).__name__})")
	timestamp = header.get("Timestamp")
	if timestamp is not None and not isinstance(timestamp, str | int | float):
		raise MalformedMessage(f"envelope Header.Timestamp must be a string (got {type(timestamp).__name__})")
	version = header.get("SchemaVersion", 1)
	if isinstance(version, bool) or not isinstance(version, int):
		raise MalformedMessage(f"envelope Header.SchemaVersion must be an integer (got {version!r:.20})")
	if version > SCHEMA_VERSION:
		raise MalformedMessage(
			f"envelope schema version {version} is newer than this Spine understands ({SCHEMA_VERSION}); "
			"upgrade Spine on this site"
		)
	if version >= 2 and not optional["MessageId"]:
		raise MalformedMessage("envelope of schema version 2 has no Header.MessageId")
	docname = optional["DocName"] or _payload_name(payload)
	return Envelope(
		doctype=header["DocType"],
		event=header["Event"],
		payload=payload,
		message_id=optional["MessageId"] or None,
		docname=docname,
		topic=optional["Topic"],
		origin=optional["Origin"],
		origin_site=optional["OriginSite"],
		timestamp=None if timestamp is None else str(timestamp),
		schema_version=version,
		payload_schema=optional["PayloadSchema"],
		body=dict(body),
	)


# Characters a MariaDB utf8mb4_unicode_ci column compares exactly: no letter case, accents or
# trailing spaces for the collation to fold. "~" is left out: only shortened values contain it.
_EXACT_IN_COLUMN = re.compile(r"^[0-9a-z._:@/+=#-]+$")
_DIGEST_PREFIX = 60


def column_value(value: str | None, length: int, *, exact: bool = False) -> str | None:
	"""``value`` as it is stored in a text column of ``length`` characters, one stored value per value.

	A value that fits is stored as it is. A longer one (or, with ``exact``, one the column's
	case- and accent-insensitive collation could confuse with another) is stored as its first
	60 characters, ``~`` and its SHA-256: readable, unique per distinct value, and the same on
	every redelivery. Use ``exact`` for columns under a unique index (the message id).
	"""
	if value is None:
		return None
	if len(value) <= length and (not exact or _EXACT_IN_COLUMN.match(value)):
		return value
	return f"{value[:_DIGEST_PREFIX]}~{hashlib.sha256(value.encode()).hexdigest()}"


def to_json_compatible(value: Any) -> Any:
	"""``value`` with dates, times, Decimals, UUIDs and Documents turned into JSON types.

	Dates and datetimes become Frappe's string formats (``YYYY-MM-DD`` and
	``YYYY-MM-DD HH:MM:SS[.ffffff]``), which Frappe accepts back when the value is set on a
	document; Decimals become JSON numbers, exact up to 15 significant digits (as in Frappe's
	own ``as_json``); child tables (lists of dicts or Documents) become lists of dicts.
	"""
	return json.loads(json.dumps(value, default=_json_default))


def _json_default(obj: Any) -> Any:
	if isinstance(obj, datetime.datetime | datetime.date | datetime.time):
		return str(obj)
	if isinstance(obj, datetime.timedelta):
		return str(obj)
	if isinstance(obj, decimal.Decimal):
		return float(obj) if obj.is_finite() else str(obj)
	if isinstance(obj, uuid.UUID | bytes):
		return obj.hex() if isinstance(obj, bytes) else str(obj)
	if isinstance(obj, set | frozenset | tuple):
		return list(obj)
	as_dict = getattr(obj, "as_dict", None)
	if callable(as_dict):  # a Frappe Document or child row
		return as_dict()
	raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _payload_name(payload: Mapping[str, Any]) -> str | None:
	name = payload.get("name")
	return str(name) if isinstance(name, str | int) and name != "" else None


def _short(e: Exception) -> str:
	return str(e)[:200]
