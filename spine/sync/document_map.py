"""Spine Document Map: (origin site, local DocType, remote name) → local name, plus the newest
source version applied, so a late or replayed message never overwrites newer data; and, for a name
the source renamed away, when it did (``renamed_to``/``renamed_at``): a rename travels under the new
name's Kafka key, so the old name's earlier messages may come after it and must not bring the old
document back."""

from __future__ import annotations

from typing import Any

import frappe

DOCTYPE = "Spine Document Map"


_COLUMNS = "name, local_name, source_modified, last_message_id, renamed_to, renamed_at"


def get(origin: str, doctype: str, remote_name: str) -> frappe._dict | None:
	"""The map entry of a remote document, or None."""
	rows = frappe.db.sql(
		f"SELECT {_COLUMNS} FROM `tabSpine Document Map` "
		"WHERE origin_site = %s AND document_type = %s AND remote_name = %s",
		(origin, doctype, remote_name),
		as_dict=True,
	)
	return rows[0] if rows else None


def local_name(origin: str, doctype: str, remote_name: str) -> str | None:
	entry = get(origin, doctype, remote_name)
	return entry.local_name if entry else None


def remote_name(origin: str, doctype: str, local: str) -> str | None:
	"""The name at ``origin`` of the local document ``local`` (the entry not renamed away), or None."""
	rows = frappe.db.sql(
		"SELECT remote_name FROM `tabSpine Document Map` WHERE origin_site = %s AND document_type = %s "
		"AND local_name = %s AND renamed_to IS NULL LIMIT 1",
		(origin, doctype, local),
	)
	return rows[0][0] if rows else None


def remember(origin: str, doctype: str, remote_name: str, local: str, source_modified: str | None,
		message_id: str | None, rule: str | None, entry: str | None = None) -> None:  # fmt: skip
	"""Record (or, given its ``entry`` name, move forward) the entry of a remote document after a
	message was applied. A new entry is a plain INSERT: an upsert would lock the gap around the key and
	make two processors applying neighbouring documents wait for each other."""
	now = frappe.utils.now_datetime()
	values = {"name": entry or frappe.generate_hash(length=10), "now": now, "user": frappe.session.user,
		"origin": origin, "doctype": doctype, "remote": remote_name, "local": local,
		"source_modified": source_modified, "message_id": message_id, "rule": rule}  # fmt: skip
	if entry:
		frappe.db.sql(
			"""UPDATE `tabSpine Document Map` SET remote_name = %(remote)s, local_name = %(local)s,
			source_modified = %(source_modified)s, last_message_id = %(message_id)s, rule = %(rule)s,
			renamed_to = NULL, renamed_at = NULL, modified = %(now)s, modified_by = %(user)s WHERE name = %(name)s""",
			values,
		)
		return
	frappe.db.sql(
		"""INSERT INTO `tabSpine Document Map` (name, creation, modified, owner, modified_by, docstatus,
			origin_site, document_type, remote_name, local_name, source_modified, last_message_id, rule)
		VALUES (%(name)s, %(now)s, %(now)s, %(user)s, %(user)s, 0,
			%(origin)s, %(doctype)s, %(remote)s, %(local)s, %(source_modified)s, %(message_id)s, %(rule)s)""",
		values,
	)


def remember_rename(origin: str, doctype: str, old: str, new: str, at: str | None, message_id: str | None,
		rule: str | None) -> None:  # fmt: skip
	"""Record that the source renamed ``old`` to ``new`` at ``at`` (its Header.Timestamp): the old name's
	messages from before then are skipped when they come late."""
	entry = get(origin, doctype, old)
	if entry is None:
		remember(origin, doctype, old, new, None, message_id, rule)
		entry = get(origin, doctype, old)
	frappe.db.sql(
		"UPDATE `tabSpine Document Map` SET local_name = %s, renamed_to = %s, renamed_at = %s WHERE name = %s",
		(new, new, at, entry.name),
	)


def forget(origin: str, doctype: str, remote_name: str) -> None:
	entry = get(origin, doctype, remote_name)
	if entry:
		frappe.db.delete(DOCTYPE, {"name": entry.name})
