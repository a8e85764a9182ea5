"""What a producer route publishes: whether a document is wanted (events and condition), which of
its fields go out, and the JSON Schema (and version) of that payload.

A route's schema is published once per version to the compacted topic ``spine.schemas``: when a
save first publishes a new version, an outbound row carrying the schema is written in the same
transaction, ahead of the document's own row, so a consumer always sees the schema first.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import frappe

from spine import compat, schema

SCHEMA_TOPIC = schema.SCHEMA_TOPIC
SCHEMA_DOCTYPE = schema.SCHEMA_DOCTYPE
# Saves where a document may start matching a "becomes true" condition.
_BECOMES_TRUE_EVENTS = frozenset(
	{"after_insert", "on_update", "on_update_after_submit", "on_submit", "on_cancel"}
)
_published: set[tuple[str, str, str]] = set()  # (topic, doctype, version) known published, this process


def wanted(doc, event: str, route: dict[str, Any]) -> bool:
	"""Whether ``event`` of ``doc`` is published on ``route`` (events, condition and its mode)."""
	if not route["becomes_true"]:
		return event in route["events"] and (not route["condition"] or _holds(doc, route))
	if event not in _BECOMES_TRUE_EVENTS or not _holds(doc, route):
		return False
	done = doc.flags.setdefault("spine_became_true", set())
	this_save = (route["id"], str(doc.modified))
	if this_save in done:
		return False  # an insert passes here twice (after_insert, on_update): publish once per save
	before = doc.get_doc_before_save()
	if before is not None and _holds(before, route):
		return False
	done.add(this_save)
	return True


def _holds(doc, route: dict[str, Any]) -> bool:
	"""The route's condition on ``doc``. A condition that raises is logged against the document and
	counts as true: like a failing producer handler, it must not silently drop events."""
	try:
		return bool(evaluate(route["condition"], doc))
	except Exception:
		frappe.log_error(
			title=f"Spine condition failed for {doc.doctype} {doc.name}"[:140],
			message=f"{frappe.get_traceback()}\nCondition: {route['condition']}\nThe event was published anyway.",
			reference_doctype=doc.doctype,
			reference_name=doc.name,
		)
		return True


def evaluate(condition: str, doc) -> Any:
	"""``condition`` evaluated with Frappe's safe evaluation, ``doc`` available (as in Webhook conditions)."""
	return frappe.safe_eval(condition, eval_locals={"doc": doc})


def check_condition(doctype: str, condition: str | None) -> str | None:
	"""Why ``condition`` cannot work for ``doctype`` (tried on a new document), or None."""
	if not (condition or "").strip():
		return None
	try:
		evaluate(condition, frappe.new_doc(doctype))
	except Exception as e:
		return f"{type(e).__name__}: {e}"
	return None


def check_fields(doctype: str, text: str | None) -> str | None:
	"""Why the field spec ``text`` does not fit ``doctype``, or None."""
	spec = schema.parse_field_spec(text)
	if spec.all:
		return None
	meta = frappe.get_meta(doctype)
	for name in spec.fields:
		df = meta.get_field(name)
		if df is None and name not in schema.ALWAYS:
			return f"{doctype} has no field {name!r}"
		chosen = spec.tables.get(name)
		if chosen is not None:
			if df is None or df.fieldtype not in schema.TABLES:
				return f"{name!r} is not a child table of {doctype}, so {name}.<field> cannot be chosen"
			child = frappe.get_meta(df.options)
			for field in chosen:
				if not child.get_field(field) and field not in schema.ALWAYS_IN_ROWS:
					return f"child table {name} ({df.options}) has no field {field!r}"
	return None


def payload(doc_dict: dict[str, Any], doctype: str, route: dict[str, Any]) -> dict[str, Any]:
	"""The document as the route publishes it (its chosen fields only)."""
	spec = schema.FieldSpec.from_dict(route["fields"])
	if spec.all:
		return doc_dict
	return schema.select(doc_dict, spec, _table_fields(doctype))


def route_schema(doctype: str, route: dict[str, Any]) -> tuple[dict[str, Any], str]:
	"""(JSON Schema, version) of what ``route`` publishes for ``doctype``, from the current meta."""
	return _schema_for(doctype, route["topic"], json.dumps(route["fields"], sort_keys=True), _shape(doctype))


def schema_to_publish(
	doctype: str, route: dict[str, Any], version: str, schema_doc: dict[str, Any]
) -> dict | None:
	"""The ``spine.schemas`` payload to write ahead of this save's row, when ``version`` is new; else None.

	Records the version in Spine Payload Schema in the same transaction, so it goes out once. Once
	a transaction that saw the version commits, the process knows it and asks no more; until then a
	save costs one indexed lookup (which also sees a schema row undone by a rollback to a
	savepoint), whatever the size of the transaction.
	"""
	key = (route["topic"], doctype, version)
	if key in _published:
		return None
	_known_after_commit(key)
	if frappe.db.sql(_RECORDED_SQL, key):
		return None
	frappe.get_doc(
		{"doctype": SCHEMA_DOCTYPE, "direction": "Published", "topic": route["topic"], "document_type": doctype,
			"version": version, "origin_site": frappe.local.site, "schema": json.dumps(schema_doc, indent=1)}
	).db_insert()  # fmt: skip
	return schema_message(route["topic"], doctype, version, schema_doc)


_RECORDED_SQL = """SELECT 1 FROM `tabSpine Payload Schema` WHERE topic = %s AND document_type = %s
	AND version = %s AND direction = 'Published' LIMIT 1"""


def _known_after_commit(key: tuple[str, str, str]) -> None:
	"""Add ``key`` to what this process knows is published once the current transaction commits
	(one pair of callbacks per transaction, not per save)."""
	pending = getattr(frappe.local, "spine_schemas_checked", None)
	if pending is None:
		pending = frappe.local.spine_schemas_checked = set()

		def committed() -> None:
			_published.update(pending)
			frappe.local.spine_schemas_checked = None

		def rolled_back() -> None:
			frappe.local.spine_schemas_checked = None

		compat.after_commit(committed)
		compat.after_rollback(rolled_back)
	pending.add(key)


def matches(doc, route: dict[str, Any]) -> bool:
	"""Whether ``doc`` meets the route's condition (or it has none); for backfills, whatever the event."""
	return not route["condition"] or _holds(doc, route)


def schema_message(topic: str, doctype: str, version: str, schema_doc: dict[str, Any]) -> dict[str, Any]:
	"""The payload of a ``spine.schemas`` message."""
	return {"topic": topic, "doctype": doctype, "version": version, "schema": schema_doc}


def _table_fields(doctype: str) -> tuple[str, ...]:
	return tuple(df.fieldname for df in frappe.get_meta(doctype).get_table_fields())


def _shape(doctype: str) -> tuple:
	"""The DocType's fields as a hashable value (custom fields included), children nested."""
	meta = frappe.get_meta(doctype)
	fields = []
	for df in meta.fields:
		children = None
		if df.fieldtype in schema.TABLES and df.options:
			children = tuple(
				(c.fieldname, c.fieldtype, int(c.reqd or 0), c.options or "")
				for c in frappe.get_meta(df.options).fields
			)
		fields.append((df.fieldname, df.fieldtype, int(df.reqd or 0), df.options or "", children))
	return tuple(fields)


@functools.lru_cache(maxsize=256)
def _schema_for(doctype: str, topic: str, spec_json: str, shape: tuple) -> tuple[dict[str, Any], str]:
	described = [
		{
			"fieldname": name, "fieldtype": kind, "reqd": reqd, "options": options,
			"fields": [{"fieldname": c[0], "fieldtype": c[1], "reqd": c[2], "options": c[3]} for c in children or ()],
		}
		for name, kind, reqd, options, children in shape
	]  # fmt: skip
	built = schema.build_schema(doctype, described, schema.FieldSpec.from_dict(json.loads(spec_json)), topic)
	return built, schema.version(built)


def preview(doctype: str, topic: str, published_fields: str | None) -> tuple[dict[str, Any], str]:
	"""(schema, version) a route with these settings would publish; for Desk and spine-schema."""
	route = {"topic": topic, "fields": schema.parse_field_spec(published_fields).to_dict()}
	return route_schema(doctype, route)
