"""The jsonworker's job: store a batch of Kafka messages as Inbound Message Log rows, once.

One INSERT IGNORE per batch; the unique message id drops a redelivered message. Messages
that are not a Spine envelope are stored too, as Invalid with the reason, so nothing read
from Kafka disappears. After the commit, processing is kicked.
"""

from __future__ import annotations

import time
from typing import Any

import frappe
from frappe.utils import now_datetime

from spine import compat, db_connection, envelope, logs, message_log, metrics, spans, trace
from spine.config.kafka import SPINE_KEYS
from spine.errors import MalformedMessage
from spine.kafka.records import Record, record_value
from spine.kafka.stored import job_parts
from spine.registry import decode as registry_decode
from spine.registry import framing

log = logs.logger(__name__)

_COLUMNS = message_log.INBOUND_COLUMNS  # the values each row gives, in this order
# Text columns and their lengths (message_log.json). INSERT IGNORE would cut a longer value
# silently, so two message ids sharing a prefix would collapse into one row; envelope.column_value
# stores such values in a form that stays unique instead.
_TEXT_COLUMNS = {
	"message_id": 140, "document_type": 140, "document_name": 140, "event": 140, "topic": 255,
	"kafka_key": 300, "origin_site": 140, "correlation_id": 140,
}  # fmt: skip
# A small batch on an idle system is handled in the transaction that stored it: the lowest latency
# and the fewest statements per message (single-commit traffic arrives in batches of a few).
# Bigger ones, or any while other jobs wait, are handed to processing jobs so storing stays fast.
INLINE_PROCESS_MAX_ROWS = 50
INLINE_PROCESS_SECONDS = 1.0


def store_batch(
	site: str, records: list[Record], queue_name: str | None = None, position: dict[str, Any] | None = None
) -> int:
	"""RQ job entry (JSON args): store ``records`` for ``site`` and handle them, or kick processing.

	With ``position`` (from the dispatcher, see ``stored.job_parts``) each partition's stored
	position moves past its records in the same transaction, and nothing of a partition is stored
	if its records do not continue from its position (see ``offsets.take``). A batch of up to
	``INLINE_PROCESS_MAX_ROWS`` new rows, while no other job waits, is handled in the transaction
	that stores it (one commit for both; a handler's failure still undoes only its own message).
	If handling fails outside a handler, the rows are stored without it and processing is kicked.
	Returns the rows stored.
	"""
	from spine.consumer import processor
	from spine.consumer.queue import job_site

	with job_site(site):
		stored, pending = _store_records(records, position)
		if not records:
			return 0
		if not pending or len(pending) > INLINE_PROCESS_MAX_ROWS or _backlog(queue_name):
			frappe.db.commit()  # nosemgrep: frappe-manual-commit - the rows must be durable before processing
			# nothing new: the job that stored them may have died before handling them
			_process_or_kick(stored, queue_name)
			return stored
		try:
			handled = processor.handle_stored(pending, max_seconds=INLINE_PROCESS_SECONDS)  # commits
		except Exception as e:
			_rolled_back(
				e, "handling the messages in the transaction that stores them failed; storing them alone"
			)
			stored, pending = _store_records(records, position)
			frappe.db.commit()  # nosemgrep: frappe-manual-commit - stored now; a processing job handles them
			handled = 0
		if handled < len(pending) and queue_name:  # some wait behind an earlier message, or time ran out
			processor.kick(queue_name)
		return stored


def _store_records(records: list[Record], position: dict[str, Any] | None) -> tuple[int, list[str]]:
	"""Take the positions and insert the rows (uncommitted); (rows stored, message ids of new Pending rows)."""
	from spine.consumer import offsets

	if position:
		fresh = [
			rec
			for _tp, part, after in job_parts(records, position)
			for rec in offsets.take(position["group"], part, after)
		]
	else:
		fresh = records
	return _insert(fresh)


def _rolled_back(error: Exception, what: str) -> None:
	"""End the failed transaction (a lost connection is replaced) and say so."""
	if db_connection.is_lost(error):
		db_connection.reconnect()
	else:
		frappe.db.rollback()
	log.warning(
		"Spine intake on %s: %s (%s); a processing job handles them", frappe.local.site, what, error,
		exc_info=True,
	)  # fmt: skip


def _process_or_kick(stored: int, queue_name: str | None) -> None:
	"""Handle what is due right here (the site is set up already) if the queue is idle, otherwise
	kick processing jobs. A failure here never fails the intake job: the rows are stored, and a
	processing job or the per-minute scheduler handles them.
	"""
	from spine.consumer import processor

	done_all = False
	if stored <= INLINE_PROCESS_MAX_ROWS and not _backlog(queue_name):
		try:
			processor.process(max_seconds=INLINE_PROCESS_SECONDS)
			done_all = not processor.has_due()
		except Exception as e:
			_rolled_back(e, "handling right after storing failed")
	if not done_all and queue_name:
		processor.kick(queue_name)


def _backlog(queue_name: str | None) -> bool:
	"""Whether other jobs wait in the queue: then storing them comes first, handling goes to processing jobs."""
	if not queue_name:
		return False
	from spine.consumer.queue import json_queue

	try:
		return json_queue(queue_name).count > 0
	except Exception:
		return False


def store(records: list[Record]) -> int:
	"""Insert one row per record (in the current transaction); duplicates are skipped. Returns the
	rows inserted."""
	return _insert(records)[0]


def _insert(records: list[Record]) -> tuple[int, list[str]]:
	"""``store``, also returning the message ids of the records that are Pending rows now (new in
	this call, or stored before)."""
	if not records:
		return 0, []
	max_bytes = _max_message_bytes()
	now = now_datetime()
	values: list[Any] = []
	pending: list[str] = []
	status_at, id_at = _COLUMNS.index("status"), _COLUMNS.index("message_id")
	for rec in records:
		row = _row(rec, max_bytes)
		if row[status_at] == message_log.PENDING:
			pending.append(row[id_at])
		values.extend(row)
	started = time.time_ns()
	inserted = message_log.insert_inbound(values, len(records), now)
	if spans.available():
		at = _COLUMNS.index("trace_parent")
		for i in range(at, len(values), len(_COLUMNS)):
			spans.record("spine store", values[i], started, site=frappe.local.site)
	if metrics.enabled():
		_count_after_commit(records, values, inserted, now)
	return inserted, pending


def _count_after_commit(records: list[Record], values: list[Any], inserted: int, now) -> None:
	"""Metrics of the rows this statement inserted, recorded if its transaction commits."""
	per_row = len(_COLUMNS)
	rows = [values[i : i + per_row] for i in range(0, len(values), per_row)]
	at = {c: _COLUMNS.index(c) for c in ("status", "message_id", "topic")}
	if inserted < len(records):  # some were stored before: count only the rows of this statement
		mine = {
			mid
			for (mid,) in frappe.db.sql(
				"SELECT message_id FROM `tabMessage Log` WHERE direction = 'Inbound' AND message_id IN %s "
				"AND creation = %s",
				(tuple(r[at["message_id"]] for r in rows), now),
			)
		}
		kept = [(rec, r) for rec, r in zip(records, rows, strict=True) if r[at["message_id"]] in mine]
	else:
		kept = list(zip(records, rows, strict=True))
	site = frappe.local.site

	def record() -> None:
		stamp = time.time()
		stored: dict[tuple[str, str], int] = {}
		for rec, r in kept:
			stored[(r[at["topic"]], r[at["status"]])] = stored.get((r[at["topic"]], r[at["status"]]), 0) + 1
			if rec.get("timestamp_ms"):
				metrics.observe("spine_published_to_stored_seconds", stamp - rec["timestamp_ms"] / 1000,
					site=site, topic=r[at["topic"]])  # fmt: skip
		for (topic, status), n in stored.items():
			metrics.inc("spine_messages_stored_total", n, site=site, topic=topic, status=status)

	compat.after_commit(record)


def coordinate_id(rec: Record) -> str:
	"""A message id from Kafka coordinates, for messages that carry none: a redelivery gets the same id."""
	return f"kafka:{rec['topic']}:{rec['partition']}:{rec['offset']}"


def _row(rec: Record, max_bytes: int) -> list[Any]:
	raw = record_value(rec)
	base = {
		"topic": rec["topic"],
		"kafka_partition": rec["partition"],
		"kafka_offset": rec["offset"],
		"kafka_key": rec.get("key"),
	}
	try:
		headers = rec.get("headers") or {}
		framed = registry_decode.envelope_body(raw, headers, rec.get("key"), rec["topic"], _registry(raw))
		if framed is not None:
			env = envelope.from_body(framed)
		else:
			env = envelope.parse(
				raw, max_bytes=max_bytes, content_type=headers.get("content-type"), topic=rec["topic"]
			)
	except MalformedMessage as e:
		log.warning(
			"Spine intake: %s[%s]@%s stored as Invalid: %s",
			rec["topic"],
			rec["partition"],
			rec["offset"],
			e.reason,
		)
		return _values(
			base, status=message_log.INVALID, message_id=coordinate_id(rec), last_error=e.reason,
			message=_readable(rec, raw, max_bytes),
		)  # fmt: skip
	return _values(
		{**base, "kafka_key": rec.get("key") or env.key},
		status=message_log.PENDING,
		message_id=env.message_id or coordinate_id(rec),
		document_type=env.doctype,
		document_name=env.docname,
		event=env.event,
		origin_site=env.origin_site or env.origin,
		# a CloudEvent in structured mode or a registry-framed message is kept as the envelope it became:
		# what its handlers get
		message=envelope.encode(env).decode() if _converted(env, raw) else rec["value"],
		correlation_id=_text(env.body["Header"].get("CorrelationId")),
		trace_parent=env.body["Header"].get("TraceParent")
		if trace.parse(env.body["Header"].get("TraceParent"))
		else None,
	)


def _converted(env: envelope.Envelope, raw: bytes | None) -> bool:
	return "CloudEvent" in env.body["Header"] or framing.unframe(raw) is not None


def _registry(raw: bytes | None):
	"""The site's registry client, asked only for a registry-framed value (None: the block names none)."""
	if framing.unframe(raw) is None:
		return None
	from spine.settings import broker

	return broker.registry()


def _values(base: dict[str, Any], **fields: Any) -> list[Any]:
	row = {**base, **fields}
	for column, length in _TEXT_COLUMNS.items():
		row[column] = envelope.column_value(row.get(column), length, exact=column == "message_id")
	return [row.get(c) for c in _COLUMNS]


def _text(value: Any) -> str | None:
	return value if isinstance(value, str) and value else None


def _readable(rec: Record, raw: bytes | None, max_bytes: int) -> str | None:
	"""The raw value for the operator: text as it came, other bytes escaped, huge values cut."""
	if raw is None:
		return None
	text = rec["value"] if not rec.get("value_b64") else raw.decode("utf-8", errors="backslashreplace")
	limit = min(max_bytes, 65_536)
	return text if len(text) <= limit else text[:limit] + f"\n… [{len(raw):,} bytes; cut at {limit:,}]"


def _max_message_bytes() -> int:
	conf = frappe.conf.get("kafka") or {}
	key = "spine.max.message.bytes"
	try:
		return int(conf.get(key) or SPINE_KEYS[key]) if isinstance(conf, dict) else SPINE_KEYS[key]
	except (TypeError, ValueError):
		return SPINE_KEYS[key]
