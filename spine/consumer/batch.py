"""One processing batch: a transaction over locked rows, in document order, committed once.

What this keeps true:

- a message's handler effects and its status change commit together, and the batch commits once
  (``Outcomes`` writes the statuses in the same transaction);
- concurrent processors (scheduler, kicks, several jsonworkers) never handle a row twice: a
  batch's rows are locked ``FOR UPDATE SKIP LOCKED``, by primary key (or message id) only, so no
  other row of Message Log, and no place where a new one goes, is locked (``spine.message_log``);
- the order rule (``spine.message_log``): a row waits while an earlier one of its document is
  unfinished and not in this batch, and a failure holds back the later rows of its document in the
  batch; Failed rows no longer block;
- a handler that calls ``frappe.db.commit()`` or ``rollback()`` itself is noticed: the batch stops
  right there (what committed is recorded, what rolled back is handled again), and from then on
  that handler's messages are handled one per transaction, as Spine's first release did.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import frappe

from spine import compat, logs, message_log, spans
from spine.config.topics import KEYS_TOPIC
from spine.consumer.outcomes import Outcomes
from spine.consumer.routing import SELF_COMMITTING, Route, Router
from spine.consumer.running import Ended, Failure, Runner, failure_outcome
from spine.message_log import Outcome
from spine.retry import RetryPolicy

log = logs.logger(__name__)

BATCH_SECONDS = 2.0  # a batch stops taking new messages after this long, so its locks are held briefly


@dataclass
class Batch:
	"""One transaction over a set of locked rows. ``run`` commits it and returns the rows finished."""

	settings: dict[str, Any]
	policy: RetryPolicy
	max_seconds: float = BATCH_SECONDS
	outcomes: Outcomes = field(init=False)
	router: Router = field(init=False)
	runner: Runner = field(init=False)

	def __post_init__(self) -> None:
		self.outcomes = Outcomes(self.policy)
		self.router = Router(self.settings)
		self.runner = Runner(self.outcomes)

	@property
	def finished(self) -> int:
		return self.outcomes.finished

	def run(self, names: list[int], limit: int) -> int:
		rows = message_log.lock_due(names, limit)
		if not rows:
			frappe.db.rollback()
			return 0
		return self._run_locked(rows)

	def run_stored(self, message_ids: list[str]) -> int:
		"""``run`` for the rows of ``message_ids`` stored in this transaction; commits even if none is due."""
		rows = message_log.lock_stored(message_ids)
		if not rows:
			frappe.db.commit()  # nosemgrep: frappe-manual-commit - what the caller stored
			return 0
		return self._run_locked(rows)

	def _run_locked(self, rows: list) -> int:
		out, runner = self.outcomes, self.runner
		# keys first: a message signed by a key that arrived in the same batch is checked against it
		rows = sorted(message_log.in_document_order(rows), key=lambda r: r.topic != KEYS_TOPIC)
		out.rows = {r.name: r for r in rows}
		compat.after_commit(runner.ended.on_commit)
		compat.after_rollback(runner.ended.on_rollback)
		started = time.monotonic()
		groups: dict[tuple[str, str], list] = {}
		for row in rows:
			if time.monotonic() - started > self.max_seconds:
				break  # the rest stay Pending (locks are released at commit) for the next batch
			if (row.topic, row.kafka_key) in out.blocked_keys:
				continue
			route = self._admitted(row)
			if route is None:
				continue
			if route.self_committing:
				self._commit()
				return self.finished + self._run_alone(row, route)
			if route.batch:
				groups.setdefault((row.topic, row.document_type), []).append((row, route))
				continue
			with spans.span("spine handle", row.trace_parent, topic=row.topic, message=row.name) as own:
				failure = runner.one(row, route, own)
			if route.after:
				route.after()
			if runner.ended.ended:
				return self._settle_ended([row], route, failure)
		for members in groups.values():
			rows_of_route, route = [r for r, _ in members], members[0][1]
			failure = runner.group(rows_of_route, route, retry=True)
			if runner.ended.ended:
				return self._settle_ended(rows_of_route, route, failure)
		self._commit()
		return self.finished

	def _admitted(self, row) -> Route | None:
		"""The row's route, or None when it may not run (its outcome is settled): no route (Skipped), or
		a gate that stops it (trust, schema)."""
		found = self.router.route(row)
		if isinstance(found, Outcome):
			self.outcomes.settle(row, found)
			return None
		for gate in (self.router.trust_gate, self.router.schema_gate):
			if (stopped := gate(row, found)) is not None:
				self.outcomes.settle(row, stopped)
				return None
		return found

	def _commit(self) -> None:
		self.outcomes.write()
		self.runner.ended.closing = True
		frappe.db.commit()  # nosemgrep: frappe-manual-commit - the batch's effects and statuses commit together

	def _settle_ended(self, rows: list, route: Route, failure: Failure | None) -> int:
		"""A handler committed or rolled back the batch transaction itself: settle ``rows`` and stop.

		Messages earlier in the batch committed with the handler's commit, or are Pending again after
		its rollback (their effects undone with them). ``rows`` are not run again: their handler
		already ran; they are marked Processed, or failed if it raised.
		"""
		out = self.outcomes
		SELF_COMMITTING.update(route.paths)
		committed = self.runner.ended.committed
		log.warning(
			"Spine processor on %s: handler %s %s the transaction itself (message %s, %s %s); its messages "
			"are now handled one per transaction. Handlers should not commit: Spine commits their effects "
			"together with the message status.",
			frappe.local.site, ", ".join(route.paths), "committed" if committed else "rolled back",
			rows[0].name, rows[0].document_type, rows[0].kafka_key,
		)  # fmt: skip
		earlier = out.processed if committed else []  # their effects committed with the handler's commit
		marked = out.marked if committed else {}
		out.processed, out.marked = [], {}
		out.finished = 0 if not committed else out.finished
		self.runner.ended = Ended(closing=True)
		if failure:
			frappe.db.rollback()  # what the handler wrote after its own commit/rollback
			for row in rows:
				out.settle(row, failure_outcome(failure[0]), failure[1])
		else:
			earlier = earlier + [r.name for r in rows]
		if earlier:
			out.set_status(earlier, message_log.PROCESSED, None)
		for (status, reason), names in marked.items():
			out.set_status(names, status, reason)
		frappe.db.commit()  # nosemgrep: frappe-manual-commit - settle at once: the rows are no longer locked
		return self.finished

	def _run_alone(self, row, route: Route) -> int:
		"""Handle ``row`` in a transaction of its own (for handlers that commit themselves)."""
		out = self.outcomes
		out.finished = 0
		self.runner.ended = Ended(closing=True)  # commits inside are expected now
		locked = message_log.lock_due([row.name], 1)
		if not locked:
			frappe.db.rollback()
			return 0
		row = locked[0]
		out.rows[row.name] = row
		failure = self.runner.alone(row, route)
		if failure:
			out.settle(row, failure_outcome(failure[0]), failure[1])
		else:
			out.set_status([row.name], message_log.PROCESSED, None)
		frappe.db.commit()  # nosemgrep: frappe-manual-commit - handler effects and status commit together
		return self.finished
