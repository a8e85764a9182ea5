"""Outbound rows: the capture hook's, the relay's deliveries (and their retry schedule), a request
published by its caller, and the order rule as the relay applies it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import frappe
from frappe.utils import now_datetime

from spine.message_log.outcome import DELIVERY_RETRY, FAILED, OUTBOUND, PENDING, PUBLISHED, TABLE

OUTBOUND_INSERT_SQL = f"""
	INSERT INTO {TABLE} (name, creation, modified, owner, modified_by, docstatus, idx,
		direction, status, message_id, document_type, document_name, event, topic, kafka_key,
		origin_site, attempts, message, correlation_id, trace_parent)
	VALUES (NEXTVAL(`message_log_id_seq`), %(now)s, %(now)s, %(user)s, %(user)s, 0, 0,
		'{OUTBOUND}', '{PENDING}', %(message_id)s, %(doctype)s, %(docname)s, %(event)s, %(topic)s, %(key)s,
		%(origin_site)s, 0, %(message)s, %(correlation_id)s, %(trace_parent)s)
"""


def insert_outbound(values: dict[str, Any]) -> None:
	"""A Pending Outbound row (``OUTBOUND_INSERT_SQL``'s values), in the caller's transaction."""
	frappe.db.sql(OUTBOUND_INSERT_SQL, values)


def insert_published(values: dict[str, Any], partition: int, offset: int) -> None:
	"""An Outbound row that is on the broker already (a request its caller published itself): Published
	in the transaction that writes it, so the relay never sees it Pending."""
	insert_outbound(values)
	frappe.db.sql(
		f"UPDATE {TABLE} SET status = '{PUBLISHED}', kafka_partition = %s, kafka_offset = %s, done_at = %s "
		f"WHERE message_id = %s AND direction = '{OUTBOUND}'",
		(partition, offset, values["now"], values["message_id"]),
	)


_OUTBOUND_COLUMNS = (
	"name, topic, kafka_key, message, attempts, next_attempt_at, message_id, document_type, document_name, "
	"event, origin_site, creation, trace_parent"
)


class DueRows(list):
	"""Pending Outbound rows due now; ``saw_all``: every Pending row was read (none beyond them)."""

	saw_all = False


def due_outbound(limit: int) -> DueRows:
	"""Pending rows to publish now, in capture order, by the order rule: a key whose earlier row waits
	for its retry is held back as a whole.

	Considers the oldest ``limit`` pending rows (due or not): every earlier row of a key is among them.
	Rows never tried (next_attempt_at NULL) come off the (direction, status, next_attempt_at) index in
	name order, so LIMIT stops the read early; rows that failed before are few and read narrowly. One
	ORDER BY over both would sort the whole backlog, message bodies included.
	"""
	fresh = frappe.db.sql(
		f"""SELECT {_OUTBOUND_COLUMNS} FROM {TABLE} FORCE INDEX (direction_status_next_attempt_at_index)
		WHERE direction = '{OUTBOUND}' AND status = '{PENDING}' AND next_attempt_at IS NULL
		ORDER BY name LIMIT %s""",
		(limit,),
		as_dict=True,
	)
	retried = frappe.db.sql(
		f"""SELECT name, kafka_key, next_attempt_at FROM {TABLE}
		WHERE direction = '{OUTBOUND}' AND status = '{PENDING}' AND next_attempt_at IS NOT NULL
		ORDER BY name LIMIT %s""",
		(limit,),
		as_dict=True,
	)
	pending = sorted([*fresh, *retried], key=lambda r: r.name)[:limit]
	now = now_datetime()
	blocked: set[str] = set()
	due: list = []
	for row in pending:
		if row.kafka_key in blocked:
			continue
		if row.next_attempt_at and row.next_attempt_at > now:
			blocked.add(row.kafka_key)
			continue
		due.append(row)
	retry_now = [r.name for r in due if r.next_attempt_at]
	if retry_now:
		full = {
			r.name: r
			for r in frappe.db.sql(
				f"SELECT {_OUTBOUND_COLUMNS} FROM {TABLE} WHERE name IN %(names)s",
				{"names": tuple(retry_now)},
				as_dict=True,
			)
		}
		due = [full.get(r.name, r) if r.next_attempt_at else r for r in due]
	found = DueRows(due)
	found.saw_all = len(fresh) < limit and len(retried) < limit and len(fresh) + len(retried) <= limit
	return found


def published(confirmed: Sequence[tuple[int, int, int]]) -> None:
	"""Mark rows Published with their (name, partition, offset): one UPDATE for a whole batch (per-row
	statements halve relay throughput). The values arrive as a derived table joined on name: linear,
	where a CASE per column compares every row with every WHEN."""
	if not confirmed:
		return
	first, *rest = confirmed
	values = " UNION ALL ".join(
		[f"SELECT {int(first[0])} AS n, {int(first[1])} AS p, {int(first[2])} AS o"]
		+ [f"SELECT {int(n)}, {int(p)}, {int(o)}" for n, p, o in rest]
	)  # integers the relay itself read or got from librdkafka: safe to write into the statement
	now = now_datetime()
	frappe.db.sql(
		f"""UPDATE {TABLE} m FORCE INDEX (PRIMARY) JOIN ({values}) v ON m.name = v.n
		SET m.status = '{PUBLISHED}', m.kafka_partition = v.p, m.kafka_offset = v.o, m.done_at = %(now)s,
			m.modified = %(now)s, m.last_error = NULL, m.next_attempt_at = NULL
		WHERE m.status = '{PENDING}'""",
		{"now": now},
	)


def published_out_of_turn(name: int, partition: int, offset: int) -> None:
	"""A row the broker confirmed although an earlier row of its document failed in the same send:
	the record is kept true (Published), and says so."""
	now = now_datetime()
	frappe.db.sql(
		f"""UPDATE {TABLE} FORCE INDEX (PRIMARY) SET status = '{PUBLISHED}', kafka_partition = %s,
		kafka_offset = %s, done_at = %s, modified = %s, last_error = %s WHERE name = %s AND status = '{PENDING}'""",
		(partition, offset, now, now, "published after an earlier event of this document failed", name),
	)


def delivery_failed(row, error: str, retriable: bool) -> str:
	"""A delivery the broker did not confirm: the next attempt scheduled (``DELIVERY_RETRY``, forever),
	or Failed when the broker refused the record for good. Returns what happens next, for the log."""
	now = now_datetime()
	attempts = (row.attempts or 0) + 1
	line = f"{now:%Y-%m-%d %H:%M:%S} delivery {attempts}: {error}"
	if retriable:
		frappe.db.sql(
			f"""UPDATE {TABLE} FORCE INDEX (PRIMARY) SET attempts = %s, next_attempt_at = %s, last_error = %s,
			modified = %s, attempt_history = CONCAT_WS('\n', attempt_history, %s)
			WHERE name = %s AND status = '{PENDING}'""",
			(attempts, DELIVERY_RETRY.next_attempt_at(attempts, now), error, now, line, row.name),
		)
		return "will retry"
	frappe.db.sql(
		f"""UPDATE {TABLE} FORCE INDEX (PRIMARY) SET status = '{FAILED}', attempts = %s, last_error = %s,
		modified = %s, attempt_history = CONCAT_WS('\n', attempt_history, %s)
		WHERE name = %s AND status = '{PENDING}'""",
		(attempts, f"{error} (not retried: fix the cause, then Republish)", now, line, row.name),
	)
	return "marked Failed"
