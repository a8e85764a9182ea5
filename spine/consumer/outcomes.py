"""What the messages of a processing batch came to, written in the batch's own transaction.

Every message's ``spine.message_log.Outcome`` is settled here. Processed rows and rows marked with
one status and reason (Skipped, Invalid, ...) are written with one UPDATE each at commit; a failure
(Error with its next attempt, or Failed) and a wait for a missing document are written at once, with
a line in the row's attempt history; a sync rule's outcome is a note appended to the history at
commit. ``spine.message_log`` writes all of it. Metrics are recorded only once the batch's
transaction commits, so a batch done again counts once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import frappe
from frappe.utils import now_datetime

from spine import compat, logs, message_log, metrics, trace
from spine.message_log import Outcome
from spine.retry import RetryPolicy

log = logs.logger(__name__)


class Outcomes:
	"""The statuses, notes, failures and metrics of one batch: every message's ``Outcome`` comes here
	(``settle``), and ``spine.message_log`` writes it."""

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

	def settle(self, row, outcome: Outcome, traceback: str | None = None) -> None:
		"""Record what handling ``row`` came to: a final status at commit (Processed, Skipped, Invalid, a
		gate's Failed), or at once a failure with its next attempt, or a wait for a missing document;
		by the order rule, a failure or a wait holds back the later messages of its document."""
		if outcome.waiting_for:
			self._wait(row, outcome)
		elif outcome.retry or outcome.error is not None:
			self._fail(row, outcome, traceback)
		elif outcome.status == message_log.PROCESSED:
			self.processed.append(row.name)
		else:
			self.marked.setdefault((outcome.status, outcome.reason), []).append(row.name)

	def write(self) -> None:
		"""Write what waits for the commit: Processed and marked rows, notes, waiters woken."""
		if self.processed:
			self.set_status(self.processed, message_log.PROCESSED, None)
		for (status, reason), names in self.marked.items():
			self.set_status(names, status, reason)
		if self.notes:
			message_log.add_notes(self.notes)
			self.notes = {}
		message_log.wake(self.woken)
		self.processed, self.marked, self.woken = [], {}, set()

	def set_status(self, names: list[int], status: str, reason: str | None) -> None:
		self._count(names, status)
		message_log.set_status(names, status, reason)
		self.finished += len(names)

	def _wait(self, row, outcome: Outcome) -> None:
		"""The message needs a document that is not here yet: it waits (tried again when that document
		arrives, or on the retry schedule), Failed if still waiting after the last attempt."""
		if message_log.record_waiting(row, outcome, self.policy) is None:
			attempts = (row.attempts or 0) + 1
			self._fail(row, message_log.failed(f"{outcome.reason} (still, after {attempts} attempts)"), None)
			return
		self.measure(metrics.inc, "spine_sync_outcomes_total", 1, topic=row.topic, outcome="wait")
		self.finished += 1
		self.blocked_keys.add((row.topic, row.kafka_key))

	def _fail(self, row, outcome: Outcome, traceback: str | None) -> None:
		"""A handler (or a gate) failed: Error with the next attempt's time, or Failed after the last
		attempt or when the outcome is final."""
		status, next_at = message_log.record_failure(row, outcome, self.policy, traceback)
		if status == message_log.ERROR:
			self.blocked_keys.add((row.topic, row.kafka_key))  # later events of this document wait
			self.measure(metrics.inc, "spine_messages_retried_total", 1, topic=row.topic)
			told = f"will retry at {next_at:%Y-%m-%d %H:%M:%S}"
		else:
			self.rows.setdefault(row.name, row)
			self._count([row.name], message_log.FAILED)
			told = "marked Failed"
		self.finished += 1
		error = outcome.error
		what = (
			f"{type(error).__name__}: {str(error)[:200]}"
			if error is not None
			else (outcome.reason or "")[:200]
		)
		log.warning(
			"Spine processor on %s: message %s (%s %s, topic %s, trace %s) failed on attempt %s: %s; %s",
			frappe.local.site, row.name, row.document_type, row.kafka_key, row.topic,
			trace.trace_id(row.get("trace_parent")) or "-", (row.attempts or 0) + 1, what, told,
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
