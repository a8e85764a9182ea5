"""Payload schemas for people: the "Show schema" button on a producer route, and ``spine-schema``."""

from __future__ import annotations

from typing import Any

import frappe

from spine.producer import capture, shape
from spine.settings import config_cache


@frappe.whitelist()
def show(document_type: str, topic: str, published_fields: str | None = None) -> dict[str, Any]:
	"""The schema a route with these settings publishes (unsaved rows too): ``{"version", "schema"}``."""
	frappe.only_for("System Manager")
	if problem := shape.check_fields(document_type, published_fields):
		frappe.throw(problem, title="Invalid field")
	schema_doc, version = shape.preview(document_type, topic or "(topic)", published_fields)
	return {"version": version, "schema": schema_doc}


def route_schemas(doctype: str | None = None, topic: str | None = None) -> list[dict[str, Any]]:
	"""``[{"topic", "doctype", "version", "schema"}]`` of the enabled producer routes, filtered."""
	config_cache.forget_local()
	found = []
	for route_doctype, routes in sorted(config_cache.producer_routes().items()):
		if doctype and route_doctype != doctype:
			continue
		for route in routes:
			if topic and route["topic"] != topic:
				continue
			schema_doc, version = shape.route_schema(route_doctype, route)
			found.append(
				{"topic": route["topic"], "doctype": route_doctype, "version": version, "schema": schema_doc}
			)
	return found


def publish(found: list[dict[str, Any]]) -> int:
	"""Put each schema on spine.schemas (in the outbox) unless its version went out before; returns how many."""
	written = 0
	for item in found:
		announce = shape.schema_to_publish(
			item["doctype"], {"topic": item["topic"]}, item["version"], item["schema"]
		)
		if announce:
			capture.capture_raw(shape.SCHEMA_DOCTYPE, f"{item['topic']}:{item['doctype']}", "on_update",
				shape.SCHEMA_TOPIC, announce)  # fmt: skip
			written += 1
	frappe.db.commit()  # nosemgrep: frappe-manual-commit - a bench command's unit of work
	return written
