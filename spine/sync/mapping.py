"""How a received document becomes local values: fields copied or mapped, child rows, and links
pointed at the local documents (through the Document Map), or waited for while they are not here.
"""

from __future__ import annotations

from typing import Any

import frappe

from spine.schema import TABLES
from spine.sync import document_map
from spine.sync.outcomes import SyncWaiting
from spine.sync.rules import split

# Never copied from the source: Frappe's own bookkeeping, and what only this site decides.
_NOT_COPIED = frozenset({
	"name", "owner", "creation", "modified", "modified_by", "docstatus", "idx", "parent", "parentfield",
	"parenttype", "amended_from", "naming_series", "_user_tags", "_comments", "_assign", "_liked_by", "_seen",
	"doctype", "__last_sync_on", "rename_meta",
})  # fmt: skip


_LINKS = ("Link", "Dynamic Link")


def mapped(payload: dict[str, Any], rule: dict[str, Any], meta, origin: str):
	"""(values, child tables, whether link validation must be relaxed) for the local DocType."""
	values: dict[str, Any] = {}
	tables: dict[str, list[dict[str, Any]]] = {}
	skipped = set()
	if rule.get("mapping") != "Only mapped fields":
		for df in meta.fields:
			if df.fieldname in payload and df.fieldname not in _NOT_COPIED and df.fieldtype not in TABLES:
				values[df.fieldname] = payload[df.fieldname]
		for df in meta.get_table_fields():
			if isinstance(payload.get(df.fieldname), list):
				tables[df.fieldname] = payload[df.fieldname]
	for row in rule.get("field_map") or []:
		target, source = row.get("local_field"), row.get("source_field")
		if row.get("skip"):
			values.pop(target, None)
			tables.pop(target, None)
			skipped.add(target)
			continue
		given = payload.get(source) if source else None
		df = meta.get_field(target)
		if df and df.fieldtype in TABLES:
			if isinstance(given, list):
				tables[target] = given
		elif given not in (None, ""):
			values[target] = given
		elif row.get("constant") not in (None, ""):
			values[target] = row["constant"]
	tables = {
		name: [_child_values(meta, name, r) for r in rows if isinstance(r, dict)]
		for name, rows in tables.items()
	}
	ignore_flag = _resolve_links(meta, values, tables, rule, origin)
	return values, tables, ignore_flag


def _child_values(meta, table: str, row: dict[str, Any]) -> dict[str, Any]:
	child = frappe.get_meta(meta.get_field(table).options)
	return {df.fieldname: row[df.fieldname] for df in child.fields
		if df.fieldname in row and df.fieldname not in _NOT_COPIED and df.fieldtype not in TABLES}  # fmt: skip


def _resolve_links(meta, values, tables, rule, origin: str) -> bool:
	"""Point links at the local documents; raise SyncWaiting for one that is not here. Returns whether
	link validation must be relaxed (a link the rule writes even though its document is missing)."""
	ignore, clear = set(split(rule.get("ignore_links"))), set(split(rule.get("clear_links")))
	relaxed = False

	def fix(doc_meta, data: dict[str, Any], where: str) -> None:
		nonlocal relaxed
		for df in doc_meta.fields:
			if df.fieldtype not in _LINKS or not data.get(df.fieldname):
				continue
			target = df.options if df.fieldtype == "Link" else data.get(df.options)
			if not target or target == "DocType" or not exists("DocType", target):
				continue
			value = data[df.fieldname]
			local = document_map.local_name(origin, target, value) or value
			data[df.fieldname] = local
			if exists(target, local):
				continue
			if df.fieldname in clear:
				data[df.fieldname] = None
			elif df.fieldname in ignore:
				relaxed = True
			else:
				raise SyncWaiting(
					f"{target}:{value}",
					f"waiting for {target} {value} (linked from {where}{df.fieldname}): it is not on this site yet",
				)

	fix(meta, values, "")
	for table, rows in tables.items():
		child_meta = frappe.get_meta(meta.get_field(table).options)
		for row in rows:
			fix(child_meta, row, f"{table} row {row.get('idx', '?')}: ")
	return relaxed


def exists(doctype: str, name: str) -> bool:
	"""Whether ``doctype`` has a document ``name`` (one indexed read; ``frappe.db.exists`` builds its
	query through the query builder, which costs more than the read on every message of a sync)."""
	return bool(frappe.db.sql(f"SELECT 1 FROM `tab{doctype}` WHERE name = %s", (name,)))
