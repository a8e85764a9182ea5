"""What the messages of a processing batch came to, written in the batch's own transaction.

Processed rows and rows marked with one status and reason (Skipped, Invalid, ...) are written with
one UPDATE each at commit; a failure (Error with its next attempt, or Failed) and a wait for a
missing document are written at once, with a line in the row's attempt history; a sync rule's
outcome is a note appended to the history at commit. Metrics are recorded only once the batch's
transaction commits, so a batch done again counts once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import frappe
from frappe.utils import now_datetime

from spine import compat, logs, metrics, trace
from spine.errors import PermanentHandlerError
from spine.retry import RetryPolicy
from spine.sync import apply as sync_apply

log = logs.logger(__name__)

# By primary key only: through another index the UPDATE gap-locks where new rows go (every save)
STATUS_SQL = """UPDATE `tabMessage Log` FORCE INDEX (PRIMARY) SET status = %(status)s, done_at = %(now)s,
	modified = %(now)s, next_attempt_at = NULL, last_error = COALESCE(%(reason)s, last_error) WHERE name IN %(names)s"""


class Outcomes:
	"""The statuses, notes, failures and metrics of one batch."""

	def __init__(self, policy: RetryPolicy):
		self.policy = policy
		self.finished = 0  # rows that reached a new status
		self.blocked_keys: set[tuple[str, str]] = set()  # documents whose later messages wait
		self.rows: dict[int, Any] = {}  # locked rows by name (topic, creation for metrics)
		self.processed: list[int] = []  # written in one UPDATE at commit
		self.marked: dict[tuple[str, str], list[int]] = {}  # (status, reason) -> rows, likewise
		self.notes: dict[int, str] = {}  # row -> a line for its attempt history (sync outcome)
		self.woken: set[str] = set()  # documents synced in this batch: their waiters are due
		self._measured: list[tuple[Callable, str, float, dict]] = []

	def mark(self, name: int, status: str, reason: str) -> None:
		self.marked.setdefault((status, reason), []).append(name)

	def write(self) -> None:
		"""Write what waits for the commit: Processed and marked rows, notes, waiters woken."""
		if self.processed:
			self.set_status(self.processed, "Processed", None)
		for (status, reason), names in self.marked.items():
			self.set_status(names, status, reason)
		self._write_notes()
		sync_apply.wake(self.woken)
		self.processed, self.marked, self.woken = [], {}, set()

	def set_status(self, names: list[int], status: str, reason: str | None) -> None:
		self._count(names, status)
		now = now_datetime()
		frappe.db.sql(STATUS_SQL, {"status": status, "now": now, "reason": reason, "names": tuple(names)})
		self.finished += len(names)

	def record_waiting(self, row, waiting: sync_apply.SyncWaiting) -> None:
		"""The message needs a document that is not here yet: it waits (holding back later messages of
		its document), is tried again when that document arrives or on the retry schedule, and is
		marked Failed if it is still waiting after the last attempt."""
		attempts = (row.attempts or 0) + 1
		now = now_datetime()
		if not self.policy.should_retry(attempts):
			self.record_failure(
				row, PermanentHandlerError(f"{waiting} (still, after {attempts} attempts)"), str(waiting)
			)
			return
		next_at = self.policy.next_attempt_at(attempts, now)
		self.measure(metrics.inc, "spine_sync_outcomes_total", 1, topic=row.topic, outcome="wait")
		frappe.db.sql(
			"""UPDATE `tabMessage Log` SET status = 'Waiting', waiting_for = %s, attempts = %s, next_attempt_at = %s,
			last_error = %s, attempt_history = CONCAT_WS('\n', attempt_history, %s), modified = %s
			WHERE name = %s""",
			(waiting.waiting_for, attempts, next_at, str(waiting),
				f"{now:%Y-%m-%d %H:%M:%S} attempt {attempts}: {waiting}; tried again when it arrives or at {next_at:%H:%M:%S}",
				now, row.name),
		)  # fmt: skip
		self.finished += 1
		self.blocked_keys.add((row.topic, row.kafka_key))

	def record_failure(self, row, error: Exception, tb: str) -> None:
		"""A handler raised: Error with the next attempt's time (holding back later messages of its
		document), or Failed after the last attempt or when the handler said not to retry."""
		attempts = (row.attempts or 0) + 1
		now = now_datetime()
		permanent = isinstance(error, PermanentHandlerError)
		if permanent or not self.policy.should_retry(attempts):
			status, next_at = "Failed", None
			outcome = "marked Failed" + (
				" (handler said not to retry)" if permanent else f" after {attempts} attempts"
			)
		else:
			status, next_at = "Error", self.policy.next_attempt_at(attempts, now)
			outcome = f"will retry at {next_at:%Y-%m-%d %H:%M:%S}"
			self.blocked_keys.add((row.topic, row.kafka_key))  # later events of this document wait
			self.measure(metrics.inc, "spine_messages_retried_total", 1, topic=row.topic)
		if status == "Failed":
			self.rows.setdefault(row.name, row)
			self._count([row.name], "Failed")
		line = f"{now:%Y-%m-%d %H:%M:%S} attempt {attempts}: {type(error).__name__}: {str(error)[:200]}; {outcome}"
		frappe.db.sql(
			"""UPDATE `tabMessage Log` SET status = %s, attempts = %s, next_attempt_at = %s, last_error = %s,
			attempt_history = CONCAT_WS('\n', attempt_history, %s), modified = %s
			WHERE name = %s AND status IN ('Pending', 'Error', 'Waiting')""",
			(status, attempts, next_at, tb, line, now, row.name),
		)
		self.finished += 1
		log.warning(
			"Spine processor on %s: message %s (%s %s, topic %s, trace %s) failed on attempt %s: %s; %s",
			frappe.local.site, row.name, row.document_type, row.kafka_key, row.topic,
			trace.trace_id(row.get("trace_parent")) or "-", attempts, str(error)[:200], outcome,
		)  # fmt: skip

	def measure(self, record: Callable, name: str, value: float, **labels: Any) -> None:
		"""Record a metric once this batch's transaction commits (metrics on only)."""
		if not metrics.enabled():
			return
		if not self._measured:
			compat.after_commit(self._flush_measured)
			compat.after_rollback(self._measured.clear)
		self._measured.append((record, name, value, {"site": frappe.local.site, **labels}))

	def _flush_measured(self) -> None:
		measured, self._measured[:] = list(self._measured), []
		counts: dict[tuple, float] = {}  # one inc per counter and labels, however many messages
		for record, name, value, labels in measured:
			if record is metrics.inc:
				key = (name, tuple(sorted(labels.items())))
				counts[key] = counts.get(key, 0) + value
			else:
				record(name, value, **labels)
		for (name, labels), value in counts.items():
			metrics.inc(name, value, **dict(labels))

	def _count(self, names: list[int], status: str) -> None:
		now = now_datetime()
		for name in names:
			row = self.rows.get(name)
			if row is None:
				continue
			self.measure(metrics.inc, "spine_messages_handled_total", 1, topic=row.topic, status=status)
			self.measure(metrics.observe, "spine_stored_to_handled_seconds",
				(now - row.creation).total_seconds(), topic=row.topic)  # fmt: skip

	def _write_notes(self) -> None:
		"""Append each row's note to its attempt history: one UPDATE per 500 rows."""
		stamp = f"{now_datetime():%Y-%m-%d %H:%M:%S}"
		notes = list(self.notes.items())
		for start in range(0, len(notes), 500):
			chunk = notes[start : start + 500]
			frappe.db.sql(
				"UPDATE `tabMessage Log` FORCE INDEX (PRIMARY) SET attempt_history = CONCAT_WS('\n', attempt_history, CASE name "
				+ " ".join(["WHEN %s THEN %s"] * len(chunk))
				+ " END) WHERE name IN %s",
				(*[v for name, note in chunk for v in (name, f"{stamp} {note}")], tuple(n for n, _ in chunk)),
			)
		self.notes = {}
