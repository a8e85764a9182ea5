"""Backfill: publish existing documents of a configured DocType through the normal outbox path.

For the first sync of a new consumer. Documents are read in batches ordered by name (keyset
pagination, so large tables stream without OFFSET scans) and each batch commits its outbox
rows; the relay is kicked after every batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import frappe

from spine.producer import capture, shape
from spine.settings import config_cache

BY_DOCSTATUS = "by docstatus"


def backfill(
	doctype: str,
	filters: dict[str, Any] | list | None = None,
	*,
	batch_size: int = 500,
	event: str = "on_update",
	topic: str | None = None,
	progress: Callable[[int, int], None] | None = None,
) -> int:
	"""Capture one ``event`` per matching document on every route of ``doctype`` (only those to
	``topic`` when given); returns documents done. With ``event="by docstatus"`` a draft is published
	as ``on_update``, a submitted document as ``on_submit`` and a cancelled one as ``on_submit``
	followed by ``on_cancel``, so a syncing site ends with each document in the same state.

	Raises ``frappe.ValidationError`` when ``doctype`` has no enabled row in Spine Producer Config.
	"""
	config_cache.forget_local()
	routes = [r for r in config_cache.producer_routes().get(doctype, []) if not topic or r["topic"] == topic]
	if not routes:
		frappe.throw(
			f"{doctype} has no enabled row in Spine Producer Config"
			+ (f" publishing to {topic}" if topic else "")
			+ "; add one (DocType and topic) before backfilling"
		)
	if batch_size < 1:
		frappe.throw(f"batch size must be at least 1 (got {batch_size})")
	base = _as_list(filters)
	total = frappe.db.count(doctype, base)
	done, last = 0, None
	while True:
		page = base + ([[doctype, "name", ">", last]] if last is not None else [])
		names = frappe.get_all(doctype, filters=page, pluck="name", order_by="name asc", limit=batch_size)
		if not names:
			break
		for name in names:
			doc = frappe.get_doc(doctype, name)
			for route in routes:
				if shape.matches(doc, route):
					for each in _events(doc, event):
						capture.capture(doc, each, route)
		frappe.db.commit()  # nosemgrep: frappe-manual-commit - one batch of outbox rows at a time
		done += len(names)
		last = names[-1]
		if progress:
			progress(done, total)
	return done


def _events(doc, event: str) -> tuple[str, ...]:
	if event != BY_DOCSTATUS:
		return (event,)
	return {0: ("on_update",), 1: ("on_submit",), 2: ("on_submit", "on_cancel")}[doc.docstatus]


def _as_list(filters: dict[str, Any] | list | None) -> list:
	if not filters:
		return []
	if isinstance(filters, dict):
		return [[k, "=", v] if not isinstance(v, list | tuple) else [k, *v] for k, v in filters.items()]
	return list(filters)
