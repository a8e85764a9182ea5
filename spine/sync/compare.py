"""How a local document compares with a received message: its stored values read directly, and
whether a value or a child table already equals the message's. Plain reads, no writes."""

from __future__ import annotations

import json
from typing import Any

import frappe


def current(meta, name: str, tables: dict[str, list]) -> frappe._dict:
	"""The local document's stored values and the rows of ``tables``, to compare with a message (read
	directly: loading a whole Document costs more than the rest of applying an unchanged message)."""
	doc = frappe.db.sql(f"SELECT * FROM `tab{meta.name}` WHERE name = %s", (name,), as_dict=True)[0]
	for table in tables:
		doc[table] = frappe.db.sql(
			f"SELECT * FROM `tab{meta.get_field(table).options}` "
			"WHERE parent = %s AND parenttype = %s AND parentfield = %s ORDER BY idx",
			(name, meta.name, table),
			as_dict=True,
		)
	return doc


def same(here: Any, incoming: Any) -> bool:
	"""Whether a local value already equals the message's (a date here is the same as its text there;
	an empty value is empty, whatever its type)."""
	if here in (None, "") and incoming in (None, ""):
		return True
	return here == incoming or (here is not None and incoming is not None and str(here) == str(incoming))


def same_rows(current: list, incoming: list[dict[str, Any]]) -> bool:
	"""Whether the local rows of a child table already equal the message's, row by row."""
	return len(current) == len(incoming) and all(
		all(same(row.get(k), v) for k, v in new.items()) for row, new in zip(current, incoming, strict=True)
	)


def shown(value: Any) -> Any:
	"""A value as Desk shows it in a preview: plain values as they are, others as (short) JSON."""
	return (
		value if isinstance(value, str | int | float | type(None)) else json.dumps(value, default=str)[:200]
	)
