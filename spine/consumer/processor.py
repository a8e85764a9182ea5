"""The processor: run due Inbound Message Log rows through their configured handlers.

Each row is handled in its own transaction, holding a row lock (``FOR UPDATE SKIP LOCKED``):
the handlers' effects and the status change commit together or roll back together, and
concurrent processors (scheduler, kicks, several workers) never handle a row twice. Rows of
one document (same topic and Kafka key) are handled in offset order: a row waits while an
earlier one is Pending, being handled, or in Error waiting for its retry. Failed rows no
longer block.
"""

from __future__ import annotations

import json
import time
from typing import Any

import frappe
from frappe.utils import now_datetime

from spine import compat, logs
from spine.consumer.queue import json_queue
from spine.errors import HandlerConfigError, PermanentHandlerError
from spine.handlers import resolve
from spine.retry import RetryPolicy
from spine.settings import config_cache

log = logs.logger(__name__)

BATCH_SIZE = 200
MAX_RUN_SECONDS = 120
_QUEUED_KEY = "spine:processor:queued"
_JOB = "spine.consumer.processor.run_job"

# Due rows not waiting behind an earlier unfinished row of their document, so LIMIT never fills
# up with blocked rows while newer documents wait.
_CANDIDATES_SQL = """
	SELECT m.name FROM `tabMessage Log` m
	WHERE m.direction = 'Inbound' AND m.status IN ('Pending', 'Error')
		AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= %(now)s)
		AND NOT EXISTS (
			SELECT 1 FROM `tabMessage Log` e
			WHERE e.kafka_key = m.kafka_key AND e.status IN ('Pending', 'Processing', 'Error')
				AND e.direction = 'Inbound' AND e.topic = m.topic
				AND (e.kafka_partition, e.kafka_offset) < (m.kafka_partition, m.kafka_offset))
	ORDER BY m.name LIMIT %(limit)s
"""
_LOCK_SQL = """
	SELECT name, status, topic, kafka_key, kafka_partition, kafka_offset, document_type, event,
		origin_site, attempts, message
	FROM `tabMessage Log`
	WHERE name = %(name)s AND direction = 'Inbound' AND status IN ('Pending', 'Error')
		AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)
	FOR UPDATE SKIP LOCKED
"""
_EARLIER_SQL = """
	SELECT name FROM `tabMessage Log`
	WHERE kafka_key = %(key)s AND status IN ('Pending', 'Processing', 'Error') AND direction = 'Inbound'
		AND topic = %(topic)s AND (kafka_partition, kafka_offset) < (%(partition)s, %(offset)s)
	LIMIT 1
"""


def kick(queue_name: str) -> None:
	"""Ask for a processing pass on the jsonworkers' queue; at most one pass waits in the queue."""
	try:
		if compat.cache().set(compat.cache().make_key(_QUEUED_KEY), 1, nx=True, ex=600):
			json_queue(queue_name).enqueue(
				_JOB, frappe.local.site, job_timeout=MAX_RUN_SECONDS + 60, result_ttl=60
			)
	except Exception:
		log.warning(
			"Spine processor kick failed; the per-minute scheduler will handle the new messages",
			exc_info=True,
		)


def run_job(site: str) -> int:
	"""RQ job entry (JSON args) for a kicked processing pass."""
	frappe.init(site=site)
	frappe.connect()
	try:
		frappe.set_user("Administrator")
		compat.cache().delete_value(_QUEUED_KEY)
		return process()
	finally:
		frappe.destroy()


def process_scheduled() -> None:
	"""Per-minute scheduler entry: the safety net and the retry clock."""
	process()


def process(max_seconds: float = MAX_RUN_SECONDS) -> int:
	"""Handle due rows until none is left (or ``max_seconds`` passed); returns how many were finished."""
	config_cache.forget_local()
	settings = config_cache.consumer_settings()
	policy = RetryPolicy(
		max(1, int(settings["max_attempts"])),
		int(settings["retry_backoff_seconds"]),
		max(int(settings["retry_backoff_max_seconds"]), int(settings["retry_backoff_seconds"])),
	)
	deadline = time.monotonic() + max_seconds
	finished = 0
	while time.monotonic() < deadline:
		names = [r[0] for r in frappe.db.sql(_CANDIDATES_SQL, {"now": now_datetime(), "limit": BATCH_SIZE})]
		frappe.db.commit()  # nosemgrep: frappe-manual-commit - end the read so each row gets a fresh transaction
		progressed = 0
		for name in names:
			if handle_one(name, settings, policy):
				progressed += 1
		finished += progressed
		if not progressed:
			break
	return finished


def has_due() -> bool:
	"""Whether a due, unblocked Inbound row is waiting."""
	found = bool(frappe.db.sql(_CANDIDATES_SQL, {"now": now_datetime(), "limit": 1}))
	frappe.db.commit()  # nosemgrep: frappe-manual-commit - end the read transaction
	return found


def handle_one(name: int, settings: dict[str, Any], policy: RetryPolicy) -> bool:
	"""Handle row ``name`` if it is due, unlocked and not waiting behind an earlier row; commit the outcome.

	Returns True when the row reached a new status.
	"""
	now = now_datetime()
	row = frappe.db.sql(_LOCK_SQL, {"name": name, "now": now}, as_dict=True)
	if not row:
		frappe.db.rollback()
		return False
	row = row[0]
	earlier = frappe.db.sql(
		_EARLIER_SQL,
		{
			"key": row.kafka_key,
			"topic": row.topic,
			"partition": row.kafka_partition,
			"offset": row.kafka_offset,
		},
	)
	if earlier:
		frappe.db.rollback()
		return False

	skip_reason, handlers = _route(row, settings)
	if skip_reason:
		_finish(row.name, "Skipped", skip_reason)
		return True

	body = json.loads(row.message)
	try:
		for handler in handlers:
			handler(body)
	except Exception as e:
		tb = frappe.get_traceback()
		frappe.db.rollback()  # undo whatever the handlers wrote
		_record_failure(row, e, tb, policy)
		return True
	_finish(row.name, "Processed", None)
	return True


def _route(row, settings: dict[str, Any]) -> tuple[str | None, list]:
	"""(reason to skip, None) or (None, [handler callables]) for a locked row."""
	own_site = row.origin_site in {frappe.local.site, _own_client_id()}
	if own_site and not settings.get("test_mode"):
		return (
			f"published by this site ({row.origin_site}); turn on 'Handle messages from this site too' to handle it",
			[],
		)
	paths = settings["routes"].get(row.topic, {}).get(row.document_type)
	if not paths:
		unknown = (
			""
			if frappe.db.exists("DocType", row.document_type)
			else f" ({row.document_type} is not a DocType on this site)"
		)
		return f"no handler configured for topic {row.topic} and DocType {row.document_type}{unknown}", []
	installed = frappe.get_installed_apps()
	handlers = []
	for path in paths:
		try:
			handlers.append(resolve(path, installed))
		except HandlerConfigError as e:
			handlers.append(_broken_handler(e))
	return None, handlers


def _broken_handler(error: HandlerConfigError):
	def raise_config_error(_body):
		raise error

	return raise_config_error


def _record_failure(row, error: Exception, tb: str, policy: RetryPolicy) -> None:
	attempts = (row.attempts or 0) + 1
	now = now_datetime()
	permanent = isinstance(error, PermanentHandlerError)
	if permanent or not policy.should_retry(attempts):
		status, next_at = "Failed", None
		outcome = "marked Failed" + (
			" (handler said not to retry)" if permanent else f" after {attempts} attempts"
		)
	else:
		status, next_at = "Error", policy.next_attempt_at(attempts, now)
		outcome = f"will retry at {next_at:%Y-%m-%d %H:%M:%S}"
	line = (
		f"{now:%Y-%m-%d %H:%M:%S} attempt {attempts}: {type(error).__name__}: {str(error)[:200]}; {outcome}"
	)
	frappe.db.sql(
		"""UPDATE `tabMessage Log` SET status = %s, attempts = %s, next_attempt_at = %s, last_error = %s,
		attempt_history = CONCAT_WS('\n', attempt_history, %s), modified = %s
		WHERE name = %s AND status IN ('Pending', 'Error')""",
		(status, attempts, next_at, tb, line, now, row.name),
	)
	frappe.db.commit()  # nosemgrep: frappe-manual-commit - the failure must be recorded even if nothing else commits
	log.warning(
		"Spine processor: message %s (%s %s, topic %s) failed on attempt %s: %s; %s",
		row.name, row.document_type, row.kafka_key, row.topic, attempts, str(error)[:200], outcome,
	)  # fmt: skip


def _finish(name: int, status: str, reason: str | None) -> None:
	now = now_datetime()
	frappe.db.sql(
		"""UPDATE `tabMessage Log` SET status = %s, done_at = %s, modified = %s, next_attempt_at = NULL,
		last_error = COALESCE(%s, last_error) WHERE name = %s""",
		(status, now, now, reason, name),
	)
	frappe.db.commit()  # nosemgrep: frappe-manual-commit - handler effects and status commit together


def _own_client_id() -> str | None:
	kafka = frappe.conf.get("kafka")
	return kafka.get("client.id") if isinstance(kafka, dict) else None
