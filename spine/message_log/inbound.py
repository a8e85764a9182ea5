"""Inbound rows: the intake's, the processor's choice and locking of due rows by the order rule,
what handling them came to (statuses, retries, waits, attempt history), and an operator's reset."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

import frappe
from frappe.utils import now_datetime

from spine.message_log.outcome import (
	ERROR,
	FAILED,
	INBOUND,
	PENDING,
	PROCESSED,
	TABLE,
	WAITING,
	Outcome,
)
from spine.retry import RetryPolicy

INBOUND_COLUMNS = (
	"status", "message_id", "document_type", "document_name", "event", "topic", "kafka_key",
	"kafka_partition", "kafka_offset", "origin_site", "last_error", "message", "correlation_id",
	"trace_parent",
)  # fmt: skip
_INBOUND_FIXED = "name, creation, modified, owner, modified_by, docstatus, idx, direction, attempts"
_INBOUND_PARAMS = ", ".join(["%s"] * len(INBOUND_COLUMNS))


def insert_inbound(values: list[Any], rows: int, now: datetime.datetime) -> int:
	"""Insert ``rows`` Inbound rows (``values``: ``INBOUND_COLUMNS`` per row, flat) with one INSERT
	IGNORE: the unique message id drops a message stored before. Returns the rows inserted."""
	# the columns that are the same for the whole batch are written into the statement once (escaping
	# 20 parameters per row cost more than the insert itself)
	stamp = frappe.db.escape(str(now))
	row_sql = (
		f"(NEXTVAL(`message_log_id_seq`), {stamp}, {stamp}, 'Administrator', 'Administrator', 0, 0, "
		f"'{INBOUND}', 0, {_INBOUND_PARAMS})"
	)
	frappe.db.sql(
		f"INSERT IGNORE INTO {TABLE} ({_INBOUND_FIXED}, {', '.join(INBOUND_COLUMNS)}) VALUES "
		+ ", ".join([row_sql] * rows),
		values,
	)
	return frappe.db._cursor.rowcount


# Due rows not held back by an earlier row of their document that waits for a retry (the order rule),
# so LIMIT never fills up with rows that cannot run (rows another processor holds are left out later,
# by ``first_foreign_unfinished``). The subquery looks up (kafka_key, status) by equality: a
# document's finished rows, however many, are never scanned. Pending rows (next_attempt_at NULL) and
# due Error/Waiting rows are read apart: each part walks the (direction, status, next_attempt_at)
# index in name order, without sorting the whole backlog.
_NOT_HELD_BACK = f"""
	AND NOT EXISTS (
		SELECT 1 FROM {TABLE} e FORCE INDEX (kafka_key_status_index)
		WHERE e.kafka_key = m.kafka_key AND e.direction = '{INBOUND}' AND e.topic = m.topic
			AND e.status IN ('{ERROR}', '{WAITING}') AND e.next_attempt_at > %(now)s
			AND (e.kafka_partition, e.kafka_offset) < (m.kafka_partition, m.kafka_offset))
"""
DUE_INBOUND_SQL = f"""
	(SELECT m.name FROM {TABLE} m FORCE INDEX (direction_status_next_attempt_at_index)
	WHERE m.direction = '{INBOUND}' AND m.status = '{PENDING}' AND m.next_attempt_at IS NULL {_NOT_HELD_BACK}
	ORDER BY m.name LIMIT %(limit)s)
	UNION ALL
	(SELECT m.name FROM {TABLE} m
	WHERE m.direction = '{INBOUND}' AND m.status IN ('{ERROR}', '{WAITING}') AND m.next_attempt_at <= %(now)s
		{_NOT_HELD_BACK}
	ORDER BY m.name LIMIT %(limit)s)
"""
_LOCKED_COLUMNS = """name, status, topic, kafka_key, kafka_partition, kafka_offset, document_type, event,
	origin_site, attempts, message, creation, trace_parent"""
LOCK_SQL = f"""
	SELECT {_LOCKED_COLUMNS}
	FROM {TABLE} FORCE INDEX (PRIMARY)
	WHERE name IN %(names)s AND direction = '{INBOUND}' AND status IN ('{PENDING}', '{ERROR}', '{WAITING}')
		AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)
	ORDER BY name LIMIT %(limit)s
	FOR UPDATE SKIP LOCKED
"""
# The rows a job just stored, by message id (unique), in the job's own transaction.
LOCK_STORED_SQL = f"""
	SELECT {_LOCKED_COLUMNS}
	FROM {TABLE} FORCE INDEX (unique_message_id_direction)
	WHERE message_id IN %(ids)s AND direction = '{INBOUND}' AND status = '{PENDING}' AND next_attempt_at IS NULL
	ORDER BY name
	FOR UPDATE SKIP LOCKED
"""
# Per document of a batch, the first unfinished row that the batch does not hold and that comes
# before some row it holds.
_FIRST_FOREIGN_SQL = f"""
	SELECT topic, kafka_key, MIN(name) AS first FROM {TABLE}
	WHERE direction = '{INBOUND}' AND kafka_key IN %(keys)s AND status IN ('{PENDING}', '{ERROR}', '{WAITING}')
		AND name < %(last)s AND name NOT IN %(mine)s
	GROUP BY topic, kafka_key
"""


def due_inbound(limit: int) -> list[int]:
	"""Names of due Inbound rows not held back by the order rule (up to ``limit`` of each kind)."""
	return [r[0] for r in frappe.db.sql(DUE_INBOUND_SQL, {"now": now_datetime(), "limit": limit})]


def lock_due(names: list[int], limit: int) -> list:
	"""Lock the still-due rows of ``names`` (those another processor holds are skipped)."""
	return frappe.db.sql(
		LOCK_SQL, {"names": tuple(names), "now": now_datetime(), "limit": limit}, as_dict=True
	)


def lock_stored(message_ids: list[str]) -> list:
	"""Lock the Pending rows of ``message_ids`` (stored in this transaction)."""
	if not message_ids:
		return []
	return frappe.db.sql(LOCK_STORED_SQL, {"ids": tuple(message_ids)}, as_dict=True)


def in_document_order(rows: list) -> list:
	"""The order rule on locked rows: drop those behind an unfinished earlier row of their document
	that the caller does not hold."""
	keys = tuple({r.kafka_key for r in rows if r.kafka_key is not None})
	if not keys:
		return rows
	names = tuple(r.name for r in rows)
	first_foreign = {
		(f.topic, f.kafka_key): f.first
		for f in frappe.db.sql(
			_FIRST_FOREIGN_SQL, {"keys": keys, "last": max(names), "mine": names}, as_dict=True
		)
	}
	return [r for r in rows if r.name < first_foreign.get((r.topic, r.kafka_key), r.name + 1)]


_STATUS_SQL = f"""UPDATE {TABLE} FORCE INDEX (PRIMARY) SET status = %(status)s, done_at = %(now)s,
	modified = %(now)s, next_attempt_at = NULL, last_error = COALESCE(%(reason)s, last_error) WHERE name IN %(names)s"""


def set_status(names: Iterable[int], status: str, reason: str | None = None) -> None:
	"""Rows that reached a final status (Processed, Skipped, Invalid, Failed) with ``reason``."""
	names = tuple(names)
	if names:
		frappe.db.sql(
			_STATUS_SQL, {"status": status, "now": now_datetime(), "reason": reason, "names": names}
		)


def record_failure(
	row, outcome: Outcome, policy: RetryPolicy, traceback: str | None = None
) -> tuple[str, datetime.datetime | None]:
	"""A message that failed: Error with its next attempt's time (``policy``) while it may be tried
	again, Failed after the last attempt or when ``outcome`` is final; a line in its attempt history.
	Returns (status written, next attempt)."""
	attempts = (row.attempts or 0) + 1
	now = now_datetime()
	if outcome.retry and policy.should_retry(attempts):
		status, next_at = ERROR, policy.next_attempt_at(attempts, now)
		told = f"will retry at {next_at:%Y-%m-%d %H:%M:%S}"
	else:
		status, next_at = FAILED, None
		told = (
			f"marked Failed after {attempts} attempts"
			if outcome.retry
			else "marked Failed (handler said not to retry)"
		)
	error = outcome.error
	what = (
		f"{type(error).__name__}: {str(error)[:200]}" if error is not None else (outcome.reason or "")[:200]
	)
	line = f"{now:%Y-%m-%d %H:%M:%S} attempt {attempts}: {what}; {told}"
	frappe.db.sql(
		f"""UPDATE {TABLE} FORCE INDEX (PRIMARY) SET status = %s, attempts = %s, next_attempt_at = %s,
		last_error = %s, attempt_history = CONCAT_WS('\n', attempt_history, %s), modified = %s
		WHERE name = %s AND status IN ('{PENDING}', '{ERROR}', '{WAITING}')""",
		(status, attempts, next_at, traceback or outcome.reason, line, now, row.name),
	)
	return status, next_at


def record_waiting(row, outcome: Outcome, policy: RetryPolicy) -> datetime.datetime | None:
	"""A message that needs a document not here yet: Waiting (tried again when it arrives, or on the
	retry schedule); returns the next attempt's time, or None when the last attempt is spent (the
	caller records it as Failed)."""
	attempts = (row.attempts or 0) + 1
	if not policy.should_retry(attempts):
		return None
	now = now_datetime()
	next_at = policy.next_attempt_at(attempts, now)
	frappe.db.sql(
		f"""UPDATE {TABLE} FORCE INDEX (PRIMARY) SET status = '{WAITING}', waiting_for = %s, attempts = %s,
		next_attempt_at = %s, last_error = %s, attempt_history = CONCAT_WS('\n', attempt_history, %s), modified = %s
		WHERE name = %s""",
		(outcome.waiting_for, attempts, next_at, outcome.reason,
			f"{now:%Y-%m-%d %H:%M:%S} attempt {attempts}: {outcome.reason}; tried again when it arrives or at {next_at:%H:%M:%S}",
			now, row.name),
	)  # fmt: skip
	return next_at


def add_notes(notes: dict[int, str]) -> None:
	"""Append each row's note (a sync rule's outcome) to its attempt history: one UPDATE per 500 rows."""
	stamp = f"{now_datetime():%Y-%m-%d %H:%M:%S}"
	items = list(notes.items())
	for start in range(0, len(items), 500):
		chunk = items[start : start + 500]
		frappe.db.sql(
			f"UPDATE {TABLE} FORCE INDEX (PRIMARY) SET attempt_history = CONCAT_WS('\n', attempt_history, CASE name "
			+ " ".join(["WHEN %s THEN %s"] * len(chunk))
			+ " END) WHERE name IN %s",
			(*[v for name, note in chunk for v in (name, f"{stamp} {note}")], tuple(n for n, _ in chunk)),
		)


def wake(keys: Iterable[str]) -> None:
	"""Messages waiting for these documents (``DocType:name``) are due now, in this transaction."""
	keys = tuple(keys)
	if keys:
		frappe.db.sql(
			f"UPDATE {TABLE} SET next_attempt_at = %(now)s WHERE waiting_for IN %(keys)s AND status = '{WAITING}'",
			{"now": now_datetime(), "keys": keys},
		)


def reset(name: int, note: str, history: str) -> None:
	"""A row made Pending again by an operator, its attempts counted from zero."""
	frappe.db.sql(
		f"""UPDATE {TABLE} FORCE INDEX (PRIMARY) SET status = '{PENDING}', attempts = 0, next_attempt_at = NULL,
		last_error = %s, attempt_history = CONCAT_WS('\n', attempt_history, %s), modified = %s WHERE name = %s""",
		(note, history, now_datetime(), name),
	)


def note_sent_again(name: int, note: str) -> None:
	"""A Published row whose copy was sent again (Republish) says so."""
	frappe.db.sql(f"UPDATE {TABLE} FORCE INDEX (PRIMARY) SET last_error = %s WHERE name = %s", (note, name))
