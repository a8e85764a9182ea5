"""Operator actions on Message Log entries: Retry, Replay, Republish (single or bulk, from Desk).

Each action changes only entries in the statuses it applies to, notes who did what in
``last_error``, and kicks the pipeline after the commit so the entries move promptly.
"""

from __future__ import annotations

import frappe
from frappe.utils import now_datetime

from spine import compat, envelope, message_log
from spine.producer import own_key

# action -> (direction, statuses it applies to)
ACTIONS = {
	"retry": ("Inbound", ("Error", "Waiting", "Failed")),
	"replay": ("Inbound", ("Processed", "Skipped")),
	"republish": ("Outbound", ("Failed", "Published")),
}


def apply(action: str, names: list[int | str]) -> dict[str, int]:
	"""Apply ``action`` to the entries ``names``; returns ``{"changed": n, "ignored": m}``.

	Entries of the wrong direction or status are ignored (counted, not changed). Republishing a
	Published entry creates a new Outbound entry with a new message id (the consumer drops a
	repeated id); a Failed one is sent again as it is.
	"""
	if action not in ACTIONS:
		frappe.throw(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
	direction, statuses = ACTIONS[action]
	rows = frappe.get_all(
		"Message Log",
		filters={"name": ("in", [int(n) for n in names]), "direction": direction, "status": ("in", statuses)},
		fields=["name", "status", "last_error", "message", "topic", "kafka_key", "document_type", "document_name",
			"event", "origin_site"],
	)  # fmt: skip
	note = f"{action.capitalize()} by {frappe.session.user} at {now_datetime():%Y-%m-%d %H:%M:%S}"
	for row in rows:
		if action == "republish" and row.status == "Published":
			_republish_copy(row, note)
			continue
		message_log.reset(
			row.name,
			f"{note}; before: {row.status}" + (f"\n{row.last_error}" if row.last_error else ""),
			f"{now_datetime():%Y-%m-%d %H:%M:%S} {action} by {frappe.session.user} (was {row.status})",
		)
	if rows:
		_kick_after_commit(direction)
	return {"changed": len(rows), "ignored": len(names) - len(rows)}


def _republish_copy(row, note: str) -> None:
	body = frappe.parse_json(row.message)
	new_id = envelope.new_message_id()
	body["Header"]["MessageId"] = new_id
	own_key.sign_body(body)  # a copy with a new id needs a new signature (with today's key)
	message_log.insert_outbound(
		{
			"now": now_datetime(), "user": frappe.session.user, "message_id": new_id,
			"doctype": row.document_type, "docname": row.document_name, "event": row.event,
			"topic": row.topic, "key": row.kafka_key, "origin_site": row.origin_site,
			"message": frappe.as_json(body, indent=None), "correlation_id": body["Header"].get("CorrelationId"),
			"trace_parent": body["Header"].get("TraceParent"),  # the copy stays in the event's trace
		},
	)  # fmt: skip
	message_log.note_sent_again(row.name, f"{note}: sent again as message {new_id}")


def _kick_after_commit(direction: str) -> None:
	if direction == "Outbound":
		from spine.producer import relay

		compat.after_commit(relay.kick)
	else:
		frappe.enqueue("spine.consumer.processor.process_scheduled", queue="short", enqueue_after_commit=True)
