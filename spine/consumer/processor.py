"""The processor: run due Inbound Message Log rows through their configured handlers, batch by batch.

This module decides *when* processing runs and *which rows* are due; a batch's own rules live in
its parts: ``batch`` (a transaction over locked rows, in document order, committed once),
``routing`` (which handler, and the trust and schema gates), ``running`` (a message's handlers in a
savepoint, a batch handler's group, a self-committing handler alone) and ``outcomes`` (statuses,
notes, failures, waits and metrics, written in the batch's transaction).

Passes are kicked after messages are stored (at most ``PARALLEL_JOBS`` queued at once), run by the
per-minute scheduler as a safety net, and kicked again by the dispatcher while due rows wait. A
batch whose database connection died is done again on a new connection, in smaller batches while
connections keep dying.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import frappe
from frappe.utils import now_datetime

from spine import compat, db_connection, logs, message_log, metrics
from spine.consumer.batch import BATCH_SECONDS, Batch
from spine.consumer.queue import json_queue
from spine.retry import RetryPolicy
from spine.settings import config_cache

__all__ = [
	"Batch",
	"handle_stored",
	"has_due",
	"kick",
	"process",
	"process_scheduled",
	"run_job",
]

log = logs.logger(__name__)
_outage = db_connection.Outage("Spine processor")

BATCH_SIZE = 500
MAX_RUN_SECONDS = 120
# A processing job hands over to a new one after this long, so the intake jobs queued meanwhile
# get a worker (the queue is first in, first out) and storing never stalls behind processing.
JOB_RUN_SECONDS = 10.0
PARALLEL_JOBS = 2  # processing jobs that may wait in the jsonworkers' queue at once
KICK_SLOT_SECONDS = 5
_QUEUED_KEY = "spine:processor:queued"
_RUNNING_KEY = "spine:processor:running"
_JOB = "spine.consumer.processor.run_job"


def kick(queue_name: str) -> None:
	"""Ask for a processing pass on the jsonworkers' queue; at most ``PARALLEL_JOBS`` wait at once."""
	try:
		cache = compat.cache()
		for slot in range(PARALLEL_JOBS):
			# per queue, and short-lived: a job lost with its worker (or failing before it frees its
			# slot, as when the database is away) blocks the slot for KICK_SLOT_SECONDS at most
			if cache.set(
				cache.make_key(f"{_QUEUED_KEY}:{queue_name}:{slot}"), 1, nx=True, ex=KICK_SLOT_SECONDS
			):
				json_queue(queue_name).enqueue(
					_JOB, frappe.local.site, slot, queue_name, job_timeout=MAX_RUN_SECONDS + 60, result_ttl=0
				)
				return
	except Exception:
		log.warning(
			"Spine processor kick failed on %s; the per-minute scheduler will handle the new messages",
			frappe.local.site,
			exc_info=True,
		)


def run_job(site: str, slot: int = 0, queue_name: str | None = None) -> int:
	"""RQ job entry (JSON args) for a kicked processing pass; queues the next one if work is left."""
	from spine.consumer.queue import job_site, others_waiting

	with job_site(site):
		cache = compat.cache()
		cache.delete_value(f"{_QUEUED_KEY}:{queue_name}:{slot}")
		running = f"{_RUNNING_KEY}:{queue_name}:{slot}"
		cache.set(cache.make_key(running), 1, ex=int(JOB_RUN_SECONDS + 20))
		try:
			# a pass gives way to other sites' jobs waiting for this worker; what is left is kicked below
			done = process(
				max_seconds=JOB_RUN_SECONDS if queue_name else MAX_RUN_SECONDS,
				should_yield=others_waiting if queue_name else None,
			)
		finally:
			cache.delete_value(running)
		# only after progress: due rows this pass could not take are another processor's (it kicks when
		# done) or wait behind them; kicking anyway would spin a worker on them
		if queue_name and done and has_due():
			kick(queue_name)
		return done


def stalled(queue_name: str) -> bool:
	"""Whether due rows wait while no processing pass is queued or running on ``queue_name``'s
	jsonworkers (one failed on a dead connection, its worker died, or a retry came due)."""
	cache = compat.cache()
	marks = [
		f"{key}:{queue_name}:{slot}" for key in (_QUEUED_KEY, _RUNNING_KEY) for slot in range(PARALLEL_JOBS)
	]
	if any(v is not None for v in cache.mget([cache.make_key(m) for m in marks])):
		return False
	return has_due()


def process_scheduled() -> None:
	"""Per-minute scheduler entry: the safety net and the retry clock."""
	process()


def process(
	max_seconds: float = MAX_RUN_SECONDS,
	batch_size: int = BATCH_SIZE,
	should_yield: Callable[[], bool] | None = None,
) -> int:
	"""Handle due rows until none is left (or ``max_seconds`` passed, or ``should_yield()`` says so
	after a batch); returns how many reached a new status.

	A batch whose database connection died is handled again on a new connection: MariaDB rolled
	its transaction back, so its messages' effects and attempts count once. Raises if the
	database cannot be reached again (the rows stay due; the dispatcher kicks a new pass).
	"""
	config_cache.forget_local()
	settings = config_cache.consumer_settings()
	policy = retry_policy(settings)
	deadline = time.monotonic() + max_seconds
	finished = 0
	size, seconds = batch_size, BATCH_SECONDS
	while time.monotonic() < deadline:
		try:
			names = message_log.due_inbound(size * 2)
			if not names:
				break
			done = Batch(settings, policy, max_seconds=seconds).run(names, size)
		except Exception as e:
			if not db_connection.is_lost(e):
				raise
			_outage.lost(e, "the batch's transaction is gone (it counts for nothing); handling it again")
			db_connection.reconnect()
			# connections that keep dying: commit smaller batches, so each one has a chance to finish
			size, seconds = max(10, size // 4), max(0.1, seconds / 4)
			continue
		_outage.back()
		size, seconds = min(batch_size, size * 2), min(BATCH_SECONDS, seconds * 2)
		finished += done
		if not done or (should_yield and should_yield()):
			break
	frappe.db.rollback()  # end the last read
	return finished


def handle_stored(message_ids: list[str], max_seconds: float = BATCH_SECONDS) -> int:
	"""In the transaction that stored them: handle the Pending rows of ``message_ids`` and commit
	(rows and handler effects together). Returns how many reached a new status; the others (behind
	an earlier unfinished message of their document, or left when time ran out) stay Pending.
	Raises on a failure outside a handler, with the transaction left to the caller to roll back.
	"""
	settings = config_cache.consumer_settings()
	return Batch(settings, retry_policy(settings), max_seconds=max_seconds).run_stored(message_ids)


def report_backlog() -> None:
	"""Set the inbound gauges (metrics on only): rows pending, waiting, and the oldest pending's age."""
	counts = dict(
		frappe.db.sql(
			"""SELECT status, COUNT(*) FROM `tabMessage Log` WHERE direction = 'Inbound'
			AND status IN ('Pending', 'Error', 'Waiting') GROUP BY status"""
		)
	)
	oldest = frappe.db.sql(
		"SELECT MIN(creation) FROM `tabMessage Log` WHERE direction = 'Inbound' AND status = 'Pending'"
	)[0][0]
	frappe.db.rollback()  # end the read
	site = frappe.local.site
	metrics.set_gauge("spine_inbound_pending", counts.get("Pending", 0), site=site)
	metrics.set_gauge("spine_inbound_waiting", counts.get("Error", 0) + counts.get("Waiting", 0), site=site)
	age = (now_datetime() - oldest).total_seconds() if oldest else 0
	metrics.set_gauge("spine_oldest_pending_seconds", age, site=site, direction="Inbound")


def has_due() -> bool:
	"""Whether a due, unblocked Inbound row is waiting."""
	found = bool(message_log.due_inbound(1))
	frappe.db.rollback()  # end the read transaction
	return found


def retry_policy(settings: dict[str, Any]) -> RetryPolicy:
	return RetryPolicy(
		max(1, int(settings["max_attempts"])),
		int(settings["retry_backoff_seconds"]),
		max(int(settings["retry_backoff_max_seconds"]), int(settings["retry_backoff_seconds"])),
	)
