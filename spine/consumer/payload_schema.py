"""Payload schemas on the consumer side: schemas received on ``spine.schemas`` are kept in Spine
Payload Schema, and a Spine Consumer Config row may accept only some schema versions and have
payloads checked against their schema before its handlers see them."""

from __future__ import annotations

import json
from typing import Any

import frappe

from spine import message_log, schema
from spine.message_log import Outcome


class SchemaNotYetKnown(Exception):
	"""The message names a schema version this site has not received yet: try again later."""


def receive(message: dict[str, Any]) -> None:
	"""Built-in handler of ``spine.schemas``: keep the schema (once per topic, DocType and version)."""
	body = message["Payload"]
	filters = {
		"topic": body["topic"],
		"document_type": body["doctype"],
		"version": body["version"],
		"direction": "Received",
	}
	if frappe.db.exists(schema.SCHEMA_DOCTYPE, filters):
		return
	frappe.get_doc(
		{"doctype": schema.SCHEMA_DOCTYPE, **filters, "origin_site": message["Header"].get("OriginSite"),
			"schema": json.dumps(body["schema"], indent=1)}
	).db_insert()  # fmt: skip


def gate(body: dict[str, Any], topic: str, config: dict[str, Any]) -> Outcome | None:
	"""The outcome when the row's schema rules stop this message (Skipped: a version the row does not
	accept; Invalid: a payload that breaks its schema; tried again later: a schema not received yet),
	else None."""
	header = body.get("Header") or {}
	version = header.get("PayloadSchema")
	accepted = config.get("accepted_schemas") or []
	doctype = header.get("DocType")
	if accepted and version not in accepted:
		return message_log.skipped(
			f"payload schema {version or '(none: an older producer)'} of {doctype} on {topic} is not among the "
			f"versions this site's Spine Consumer Config row accepts ({', '.join(accepted)}); accept it there, "
			"then Replay this entry",
		)
	if not config.get("validate_payload"):
		return None
	if not version:
		return message_log.invalid(
			f"the row validates payloads, but this {doctype} message names no payload schema"
		)
	stored = frappe.db.get_value(
		schema.SCHEMA_DOCTYPE, {"topic": topic, "document_type": doctype, "version": version}, "schema"
	)
	if not stored:
		reason = (
			f"schema {version} of {doctype} on {topic} has not arrived on {schema.SCHEMA_TOPIC} yet; "
			"it is retried (is the producer site publishing, and this site reading, that topic?)"
		)
		return message_log.retry(reason, SchemaNotYetKnown(reason))
	error = schema.first_error(body.get("Payload"), json.loads(stored))
	return message_log.invalid(f"payload does not fit schema {version}: {error}") if error else None
