"""Running a message's handlers inside the batch transaction: one message, a batch handler's group,
or one message alone.

Each message (or batch-handler call) runs in a SAVEPOINT: when a handler raises, only its own
effects are rolled back; what each message came to is an ``Outcome`` settled in ``Outcomes``. A handler that commits or rolls back
the transaction itself is noticed (``Ended``): the run stops and returns the failure, if any, for
the batch to settle. A batch handler's failing call is tried once more, then halved until the
failing messages are found.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import frappe

from spine import message_log, metrics
from spine.consumer.outcomes import Outcomes
from spine.consumer.routing import Route
from spine.errors import PermanentHandlerError, SkipMessage
from spine.rpc import responder
from spine.sync import apply as sync_apply

Failure = tuple[Exception, str]  # the error and its traceback


def failure_outcome(error: Exception) -> message_log.Outcome:
	"""What a handler's exception comes to: Failed for good when it says not to retry
	(``PermanentHandlerError``), otherwise tried again on the retry schedule."""
	reason = f"{type(error).__name__}: {error}"
	if isinstance(error, PermanentHandlerError):
		return message_log.failed(reason, error)
	return message_log.retry(reason, error)


@dataclass
class Ended:
	"""Set when something inside the batch transaction committed or rolled it back."""

	committed: bool = False
	rolled_back: bool = False
	closing: bool = False

	def on_commit(self) -> None:
		if not self.closing:
			self.committed = True

	def on_rollback(self) -> None:
		if not self.closing:
			self.rolled_back = True

	@property
	def ended(self) -> bool:
		return self.committed or self.rolled_back


class Runner:
	"""Runs handlers for one batch; what they come to goes to ``outcomes``."""

	def __init__(self, outcomes: Outcomes):
		self.outcomes = outcomes
		self.ended = Ended()
		self._savepoints = 0

	def one(self, row, route: Route, span: str | None = None) -> Failure | None:
		"""Run the sync rule and the handlers for one message inside a savepoint; returns the failure
		only if a handler also ended the transaction (then nothing is recorded yet). A request gets
		its reply (or error reply) written in the same savepoint."""
		out = self.outcomes
		body = json.loads(row.message)
		is_request = responder.is_request(body)
		if is_request and (late := responder.expired(body)):
			out.settle(row, message_log.skipped(late))
			return None
		savepoint = self._savepoint()
		started = time.monotonic()
		# what the handlers save is published in this message's trace (under its handling span, if any)
		frappe.flags.spine_traceparent = span or (body.get("Header") or {}).get("TraceParent")
		try:
			if route.sync_rule:
				self._sync(row, body, route)
			answer = None
			for handler in route.handlers:
				result = handler(body if not route.batch else [body])
				answer = result if answer is None else answer
			if is_request:
				responder.reply(body, answer)
		except SkipMessage as e:
			frappe.db.rollback(save_point=savepoint)
			out.settle(row, message_log.skipped(e.reason))
			return None
		except sync_apply.SyncWaiting as e:
			frappe.db.rollback(save_point=savepoint)
			out.settle(row, message_log.waiting(e.waiting_for, str(e)))
			return None
		except Exception as e:
			if self.ended.ended:
				return e, frappe.get_traceback()
			tb = frappe.get_traceback()
			frappe.db.rollback(save_point=savepoint)  # undo this message's effects only
			if is_request:  # the caller gets the error now; retrying would answer too late
				responder.reply_error(body, e)
				e = PermanentHandlerError(f"{type(e).__name__}: {e} (sent back as an error reply)")
			out.settle(row, failure_outcome(e), tb)
			return None
		finally:
			frappe.flags.spine_synced_docs = None
			frappe.flags.spine_traceparent = None
			out.measure(metrics.observe, "spine_handler_seconds", time.monotonic() - started, topic=row.topic)
		if not self.ended.ended:
			out.settle(row, message_log.processed())
		return None

	def _sync(self, row, body: dict, route: Route) -> None:
		"""Apply the route's sync rule; its outcome becomes the row's note. A skip with no handlers to
		run skips the message."""
		out = self.outcomes
		try:
			note = sync_apply.apply(body, route.sync_rule, row.message_id, out.woken)
			out.notes[row.name] = note
			out.measure(metrics.inc, "spine_sync_outcomes_total", 1, topic=row.topic,
				outcome="unchanged" if note.endswith("nothing saved") else note.split()[1])  # fmt: skip
		except sync_apply.SyncSkipped as e:
			out.measure(metrics.inc, "spine_sync_outcomes_total", 1, topic=row.topic, outcome="skip")
			if not route.handlers:
				raise
			out.notes[row.name] = f"sync: skipped ({e.reason})"

	def group(self, rows: list, route: Route, retry: bool) -> Failure | None:
		"""Call the batch handlers with ``rows``; on failure try once more, then halve until found."""
		out = self.outcomes
		rows = [r for r in rows if (r.topic, r.kafka_key) not in out.blocked_keys]
		if not rows:
			return None
		bodies = [json.loads(r.message) for r in rows]
		savepoint = self._savepoint()
		started = time.monotonic()
		try:
			for handler in route.handlers:
				handler(bodies)
			out.measure(
				metrics.observe, "spine_handler_seconds", time.monotonic() - started, topic=rows[0].topic
			)
		except Exception as e:
			if self.ended.ended:
				return e, frappe.get_traceback()
			tb = frappe.get_traceback()
			frappe.db.rollback(save_point=savepoint)
			if retry:
				return self.group(rows, route, retry=False)
			if len(rows) == 1:
				out.settle(rows[0], failure_outcome(e), tb)
				return None
			half = len(rows) // 2
			failure = self.group(rows[:half], route, retry=False)
			if self.ended.ended:
				return failure
			return self.group(rows[half:], route, retry=False)
		if not self.ended.ended:
			for r in rows:
				out.settle(r, message_log.processed())
		return None

	def alone(self, row, route: Route) -> Failure | None:
		"""Run the handlers of ``row`` with no savepoint (the transaction is the message's own, for
		handlers that commit themselves); returns the failure, the handlers' effects rolled back."""
		body = json.loads(row.message)
		frappe.flags.spine_traceparent = (body.get("Header") or {}).get("TraceParent")
		try:
			for handler in route.handlers:
				handler([body] if route.batch else body)
		except Exception as e:
			tb = frappe.get_traceback()
			frappe.db.rollback()
			return e, tb
		finally:
			frappe.flags.spine_traceparent = None
		return None

	def _savepoint(self) -> str:
		self._savepoints += 1
		name = f"spine_msg_{self._savepoints}"
		frappe.db.savepoint(name)
		return name
