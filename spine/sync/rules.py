"""Spine Sync Rules as the processor sees them (cached with Spine Consumer Config), and what makes a
rule unable to work, said so that the operator knows what to fix."""

from __future__ import annotations

from typing import Any

import frappe

from spine.config.topics import topic_name_problem
from spine.schema import TABLES

FIND_BY = ("Same name", "Match fields", "Document Map")


def for_message(settings: dict[str, Any], topic: str, doctype: str) -> dict[str, Any] | None:
	"""The enabled rule for messages of ``doctype`` on ``topic``, if any."""
	return (settings.get("sync_rules") or {}).get(topic, {}).get(doctype)


def split(text: str | None) -> list[str]:
	return [p.strip() for p in (text or "").replace("\n", ",").split(",") if p.strip()]


def problems(rule: dict[str, Any]) -> list[str]:
	"""Why ``rule`` (a Spine Sync Rule as a dict) cannot work; empty when it can."""
	found = []
	if problem := topic_name_problem(rule.get("topic")):
		found.append(problem)
	local = rule.get("local_doctype") or rule.get("source_doctype")
	if not local or not frappe.db.exists("DocType", local):
		return [*found, f"{local!r} is not a DocType on this site; set Local DocType to the DocType to write"]
	meta = frappe.get_meta(local)
	if meta.issingle or meta.istable:
		found.append(
			f"{local} is a {'single' if meta.issingle else 'child table'} DocType; sync whole documents"
		)
	source_meta = (
		frappe.get_meta(rule["source_doctype"])
		if frappe.db.exists("DocType", rule["source_doctype"])
		else None
	)
	for row in rule.get("field_map") or []:
		target = row.get("local_field")
		if not target:
			found.append(f"field map row {row.get('idx')}: name the local field")
			continue
		df = meta.get_field(target)
		if df is None:
			found.append(f"field map row {row.get('idx')}: {local} has no field {target!r}")
			continue
		if not row.get("source_field") and row.get("constant") in (None, "") and not row.get("skip"):
			found.append(f"field map row {row.get('idx')}: give a source field, a constant, or tick Skip")
		source_df = (
			source_meta.get_field(row["source_field"]) if source_meta and row.get("source_field") else None
		)
		if source_df and (source_df.fieldtype in TABLES) != (df.fieldtype in TABLES):
			found.append(
				f"field map row {row.get('idx')}: {row['source_field']} is {'a' if source_df.fieldtype in TABLES else 'not a'} "
				f"child table but {target} is {'a' if df.fieldtype in TABLES else 'not a'} child table; map tables to tables"
			)
	if rule.get("find_by") == "Match fields":
		keys = split(rule.get("match_fields"))
		if not keys:
			found.append(
				"Find by Match fields: list the local fields that identify a document (e.g. item_code)"
			)
		found += [f"match field {k!r} is not a field of {local}" for k in keys if not meta.get_field(k)]
	for label, key in (("written even if missing", "ignore_links"), ("cleared if missing", "clear_links")):
		for field in split(rule.get(key)):
			df = meta.get_field(field)
			if not df or df.fieldtype not in ("Link", "Dynamic Link"):
				found.append(f"link fields {label}: {field!r} is not a link field of {local}")
	if rule.get("enabled"):
		clash = frappe.db.get_value(
			"Spine Sync Rule",
			{"enabled": 1, "topic": rule.get("topic"), "source_doctype": rule.get("source_doctype"),
				"name": ("!=", rule.get("name") or "")},
		)  # fmt: skip
		if clash:
			found.append(
				f"rule {clash} already syncs {rule['source_doctype']} from {rule['topic']}; keep one enabled"
			)
	return found
