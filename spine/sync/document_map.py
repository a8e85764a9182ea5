"""Spine Document Map: (origin site, local DocType, remote name) → local name, plus the newest
source version applied, so a late or replayed message never overwrites newer data."""

from __future__ import annotations

from typing import Any

import frappe

DOCTYPE = "Spine Document Map"


def get(origin: str, doctype: str, remote_name: str) -> dict[str, Any] | None:
	"""The map entry of a remote document, or None."""
	return frappe.db.get_value(
		DOCTYPE,
		{"origin_site": origin, "document_type": doctype, "remote_name": remote_name},
		["name", "local_name", "source_modified", "last_message_id"],
		as_dict=True,
	)


def local_name(origin: str, doctype: str, remote_name: str) -> str | None:
	entry = get(origin, doctype, remote_name)
	return entry.local_name if entry else None


def remember(origin: str, doctype: str, remote_name: str, local: str, source_modified: str | None,
		message_id: str | None, rule: str | None) -> None:  # fmt: skip
	"""Record (or move forward) the entry of a remote document after a message was applied."""
	entry = get(origin, doctype, remote_name)
	values = {
		"local_name": local,
		"source_modified": source_modified,
		"last_message_id": message_id,
		"rule": rule,
	}
	if entry:
		frappe.db.set_value(DOCTYPE, entry.name, values, update_modified=True)
		return
	frappe.get_doc(
		{
			"doctype": DOCTYPE,
			"origin_site": origin,
			"document_type": doctype,
			"remote_name": remote_name,
			**values,
		}
	).insert(ignore_permissions=True)


def rename_remote(origin: str, doctype: str, old: str, new: str, local: str | None = None) -> None:
	"""The remote document was renamed (and, with ``local``, the local one too)."""
	entry = get(origin, doctype, old)
	if entry:
		frappe.db.set_value(
			DOCTYPE, entry.name, {"remote_name": new, **({"local_name": local} if local else {})}
		)


def forget(origin: str, doctype: str, remote_name: str) -> None:
	entry = get(origin, doctype, remote_name)
	if entry:
		frappe.db.delete(DOCTYPE, {"name": entry.name})
