"""The processor: run due Inbound Message Log rows through their configured handlers.

Rows are handled in batch transactions, one SAVEPOINT per message (or per batch-handler call).
What that keeps true:

- a message's handler effects and its status change commit together: a failing handler is
  rolled back to its savepoint, so only its own effects are undone, and its failure is recorded
  in the same transaction; the batch commits once;
- concurrent processors (scheduler, kicks, several jsonworkers) never handle a row twice: a
  batch's rows are locked ``FOR UPDATE SKIP LOCKED``;
- rows of one document (same topic and Kafka key) are handled in offset order: a row waits
  while an earlier one is unfinished and not in this batch, and a failure holds back the later
  rows of its document in the batch; Failed rows no longer block;
- a handler that calls ``frappe.db.commit()`` or ``rollback()`` itself is noticed: the batch
  stops right there (what committed is recorded, what rolled back is handled again), and from
  then on that handler's messages are handled one per transaction, as Spine's first release did.

Batch handlers (a Spine Consumer Config row with "Batch handler" ticked) are called once with
the list of due messages of their route. If the call fails it is tried once more, then the batch
is split in halves until the failing messages are found; each message's status and attempts
stay its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import frappe
from frappe.utils import now_datetime

from spine import compat, db_connection, logs, metrics, spans, trace
from spine.config.topics import INITIAL_SYNC_TOPIC, KEY_DOCTYPE, KEYS_TOPIC, reply_topic
from spine.consumer import payload_schema
from spine.consumer.queue import json_queue
from spine.errors import HandlerConfigError, PermanentHandlerError, SkipMessage, SpineError
from spine.handlers import resolve
from spine.retry import RetryPolicy
from spine.rpc import REPLY_DOCTYPE, replies, responder
from spine.schema import SCHEMA_DOCTYPE, SCHEMA_TOPIC
from spine.settings import config_cache, trusted_keys
from spine.sync import apply as sync_apply
from spine.sync import initial as initial_sync
from spine.sync import rules as sync_rules
from spine.sync.initial import INITIAL_SYNC_DOCTYPE

log = logs.logger(__name__)
_outage = db_connection.Outage("Spine processor")

BATCH_SIZE = 500
# A batch stops taking new messages after this long, so its row locks are held briefly.
BATCH_SECONDS = 2.0
MAX_RUN_SECONDS = 120
# A processing job hands over to a new one after this long, so the intake jobs queued meanwhile
# get a worker (the queue is first in, first out) and storing never stalls behind processing.
JOB_RUN_SECONDS = 10.0
PARALLEL_JOBS = 2  # processing jobs that may wait in the jsonworkers' queue at once
KICK_SLOT_SECONDS = 5
_QUEUED_KEY = "spine:processor:queued"
_RUNNING_KEY = "spine:processor:running"
_JOB = "spine.consumer.processor.run_job"

# Due rows not held back by an earlier row of their document that waits for a retry, so LIMIT
# never fills up with rows that cannot run (rows another processor holds are left out later, by
# _in_document_order). The subquery looks up (kafka_key, status) by equality: a document's
# finished rows, however many, are never scanned. Pending rows (next_attempt_at
# is NULL) and due Error rows are read apart: each part walks the (direction, status,
# next_attempt_at) index in name order, without sorting the whole backlog (the optimizer, left
# alone, sorts every pending row and checks each against the subquery before applying LIMIT).
_NOT_HELD_BACK = """
	AND NOT EXISTS (
		SELECT 1 FROM `tabMessage Log` e FORCE INDEX (kafka_key_status_index)
		WHERE e.kafka_key = m.kafka_key AND e.direction = 'Inbound' AND e.topic = m.topic
			AND e.status IN ('Error', 'Waiting') AND e.next_attempt_at > %(now)s
			AND (e.kafka_partition, e.kafka_offset) < (m.kafka_partition, m.kafka_offset))
"""
_CANDIDATES_SQL = f"""
	(SELECT m.name FROM `tabMessage Log` m FORCE INDEX (direction_status_next_attempt_at_index)
	WHERE m.direction = 'Inbound' AND m.status = 'Pending' AND m.next_attempt_at IS NULL {_NOT_HELD_BACK}
	ORDER BY m.name LIMIT %(limit)s)
	UNION ALL
	(SELECT m.name FROM `tabMessage Log` m
	WHERE m.direction = 'Inbound' AND m.status IN ('Error', 'Waiting') AND m.next_attempt_at <= %(now)s {_NOT_HELD_BACK}
	ORDER BY m.name LIMIT %(limit)s)
"""
_KEYS_ROUTE = ["spine.settings.trusted_keys.receive"]
# Every locking statement on Message Log names the index it must use: left alone, MariaDB locks
# through the (direction, status, next_attempt_at) index or a full scan, and its gap locks then hold
# up every new row of the table (a user's save, the intake) until the batch commits, and deadlock
# with them (measured: a request's INSERT against a processing batch)
_LOCK_SQL = """
	SELECT name, status, topic, kafka_key, kafka_partition, kafka_offset, document_type, event,
		origin_site, attempts, message, creation, trace_parent
	FROM `tabMessage Log` FORCE INDEX (PRIMARY)
	WHERE name IN %(names)s AND direction = 'Inbound' AND status IN ('Pending', 'Error', 'Waiting')
		AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)
	ORDER BY name LIMIT %(limit)s
	FOR UPDATE SKIP LOCKED
"""
# The rows a job just stored, by message id (unique), in the job's own transaction.
_LOCK_STORED_SQL = """
	SELECT name, status, topic, kafka_key, kafka_partition, kafka_offset, document_type, event,
		origin_site, attempts, message, creation, trace_parent
	FROM `tabMessage Log` FORCE INDEX (unique_message_id_direction)
	WHERE message_id IN %(ids)s AND direction = 'Inbound' AND status = 'Pending' AND next_attempt_at IS NULL
	ORDER BY name
	FOR UPDATE SKIP LOCKED
"""
STATUS_SQL = """UPDATE `tabMessage Log` FORCE INDEX (PRIMARY) SET status = %(status)s, done_at = %(now)s,
	modified = %(now)s, next_attempt_at = NULL, last_error = COALESCE(%(reason)s, last_error) WHERE name IN %(names)s"""
# Per document of a batch, the first unfinished row that the batch does not hold and that comes
# before some row it holds (rows of a partition are stored in offset order, so name order is
# offset order within a document).
_FIRST_FOREIGN_SQL = """
	SELECT topic, kafka_key, MIN(name) AS first FROM `tabMessage Log`
	WHERE direction = 'Inbound' AND kafka_key IN %(keys)s AND status IN ('Pending', 'Processing', 'Error', 'Waiting')
		AND name < %(last)s AND name NOT IN %(mine)s
	GROUP BY topic, kafka_key
"""

# Handler paths seen calling frappe.db.commit()/rollback(); their messages get a transaction each.
_SELF_COMMITTING: set[str] = set()


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
					_JOB, frappe.local.site, slot, queue_name, job_timeout=MAX_RUN_SECONDS + 60, result_ttl=60
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
			names = [r[0] for r in frappe.db.sql(_CANDIDATES_SQL, {"now": now_datetime(), "limit": size * 2})]
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
	found = bool(frappe.db.sql(_CANDIDATES_SQL, {"now": now_datetime(), "limit": 1}))
	frappe.db.rollback()  # end the read transaction
	return found


def retry_policy(settings: dict[str, Any]) -> RetryPolicy:
	return RetryPolicy(
		max(1, int(settings["max_attempts"])),
		int(settings["retry_backoff_seconds"]),
		max(int(settings["retry_backoff_max_seconds"]), int(settings["retry_backoff_seconds"])),
	)


@dataclass
class _Route:
	"""What runs for a message: handler callables (one list per message, or one list per batch)."""

	paths: list[str]
	handlers: list[Callable[..., Any]]
	batch: bool = False
	config: dict[str, Any] | None = None  # the Spine Consumer Config row, as cached
	sync_rule: dict[str, Any] | None = None  # a Spine Sync Rule, applied before the handlers

	@property
	def self_committing(self) -> bool:
		return any(p in _SELF_COMMITTING for p in self.paths)


@dataclass
class _Ended:
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


@dataclass
class Batch:
	"""One transaction over a set of locked rows. ``run`` commits it and returns the rows finished."""

	settings: dict[str, Any]
	policy: RetryPolicy
	max_seconds: float = BATCH_SECONDS
	finished: int = 0
	blocked_keys: set[tuple[str, str]] = field(default_factory=set)
	ended: _Ended = field(default_factory=_Ended)
	_savepoints: int = 0
	_processed: list[int] = field(default_factory=list)  # written in one UPDATE at commit
	# (status, reason) -> rows, written like _processed
	_marked: dict[tuple[str, str], list[int]] = field(default_factory=dict)
	_notes: dict[int, str] = field(
		default_factory=dict
	)  # row -> a line for its attempt history (sync outcome)
	_routes: dict[tuple, tuple[str | None, _Route | None]] = field(default_factory=dict)
	_woken: set[str] = field(default_factory=set)  # documents synced in this batch: their waiters are due
	_rows: dict[int, Any] = field(default_factory=dict)  # locked rows by name (topic, creation for metrics)
	_measured: list[tuple[Callable, str, float, dict]] = field(default_factory=list)  # recorded after commit
	_keyring: trusted_keys.KeyRing | None = None  # other sites' keys, read once per batch when needed

	def run(self, names: list[int], limit: int) -> int:
		rows = frappe.db.sql(
			_LOCK_SQL, {"names": tuple(names), "now": now_datetime(), "limit": limit}, as_dict=True
		)
		if not rows:
			frappe.db.rollback()
			return 0
		return self._run_locked(rows)

	def run_stored(self, message_ids: list[str]) -> int:
		"""``run`` for the rows of ``message_ids`` stored in this transaction; commits even if none is due."""
		rows = (
			frappe.db.sql(_LOCK_STORED_SQL, {"ids": tuple(message_ids)}, as_dict=True) if message_ids else []
		)
		if not rows:
			frappe.db.commit()  # nosemgrep: frappe-manual-commit - what the caller stored
			return 0
		return self._run_locked(rows)

	def _run_locked(self, rows: list) -> int:
		# keys first: a message signed by a key that arrived in the same batch is checked against it
		rows = sorted(self._in_document_order(rows), key=lambda r: r.topic != KEYS_TOPIC)
		self._rows = {r.name: r for r in rows}
		compat.after_commit(self.ended.on_commit)
		compat.after_rollback(self.ended.on_rollback)
		started = time.monotonic()
		groups: dict[tuple[str, str], list] = {}
		for row in rows:
			if time.monotonic() - started > self.max_seconds:
				break  # the rest stay Pending (locks are released at commit) for the next batch
			if (row.topic, row.kafka_key) in self.blocked_keys:
				continue
			skip_reason, route = self._route(row)
			if skip_reason:
				self._marked.setdefault(("Skipped", skip_reason), []).append(row.name)
				continue
			if refused := self._trust_gate(row, route):
				if refused[0] == trusted_keys.RETRY:
					self._record_failure(row, SpineError(refused[1]), refused[1])
				else:
					self._marked.setdefault(refused, []).append(row.name)
				continue
			if route.config and (
				route.config.get("accepted_schemas") or route.config.get("validate_payload")
			):
				try:
					stop = payload_schema.gate(json.loads(row.message), row.topic, route.config)
				except payload_schema.SchemaNotYetKnown as e:
					self._record_failure(row, e, str(e))
					continue
				if stop:
					self._marked.setdefault(stop, []).append(row.name)
					continue
			if route.self_committing:
				self._commit()
				return self.finished + self._run_alone(row, route)
			if route.batch:
				groups.setdefault((row.topic, row.document_type), []).append((row, route))
				continue
			with spans.span("spine handle", row.trace_parent, topic=row.topic, message=row.name) as own:
				failure = self._run_one(row, route, own)
			if route.paths == _KEYS_ROUTE:
				self._keyring = None  # a key just received counts for the next message of this batch
			if self.ended.ended:
				return self._settle_ended([row], route, failure)
		for members in groups.values():
			rows_of_route, route = [r for r, _ in members], members[0][1]
			failure = self._run_group(rows_of_route, route, retry=True)
			if self.ended.ended:
				return self._settle_ended(rows_of_route, route, failure)
		self._commit()
		return self.finished

	def _trust_gate(self, row, route: _Route) -> tuple[str, str] | None:
		"""``(status, reason)`` when the message's signature, or its lack, keeps ``route`` from handling
		it: the route's *Require signature* and *Accept from*; a signature that does not verify, or
		a revoked or another site's key, everywhere."""
		rules = []
		if route.config:
			rules.append(
				(route.config, f"the Spine Consumer Config row for {row.topic} / {row.document_type}")
			)
		if route.sync_rule:
			rules.append((route.sync_rule, f"Spine Sync Rule {route.sync_rule.get('name')}"))
		if route.paths == ["spine.rpc.replies.handle"] and frappe.get_cached_doc("Spine Settings").get(
			"require_signed_replies"
		):
			rules.append(({"require_signature": True}, "this site (Spine Settings: replies must be signed)"))
		required = [(bool(r.get("require_signature")), r.get("accept_from") or [], what) for r, what in rules]
		if not any(need or accept for need, accept, _ in required) and '"Signature"' not in row.message:
			return None  # unsigned, and nothing asks for a signature: as before signing existed
		if self._keyring is None:
			self._keyring = trusted_keys.KeyRing()
		verdict = self._keyring.judge(json.loads(row.message))
		for need, accept, what in required or [(False, [], "this site")]:
			if refused := trusted_keys.admit(verdict, need, accept, what):
				return refused
		return None

	def _in_document_order(self, rows: list) -> list:
		"""Drop rows behind an unfinished earlier row of their document that this batch does not hold."""
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

	def _route(self, row) -> tuple[str | None, _Route | None]:
		"""(reason to skip, None) or (None, the route) for a locked row."""
		key = (row.topic, row.document_type, row.origin_site)
		if key not in self._routes:
			self._routes[key] = self._find_route(row)
		return self._routes[key]

	def _find_route(self, row) -> tuple[str | None, _Route | None]:
		if row.topic == SCHEMA_TOPIC and row.document_type == SCHEMA_DOCTYPE:
			return None, _Route(["spine.consumer.payload_schema.receive"], [payload_schema.receive])
		if row.document_type == REPLY_DOCTYPE and row.topic == reply_topic(frappe.local.site):
			return None, _Route(["spine.rpc.replies.handle"], [replies.handle])
		own_site = row.origin_site in {frappe.local.site, _own_client_id()}
		if own_site and not self.settings.get("test_mode"):
			return (
				f"published by this site ({row.origin_site}); turn on 'Handle messages from this site too' "
				"to handle it",
				None,
			)
		if row.topic == INITIAL_SYNC_TOPIC and row.document_type == INITIAL_SYNC_DOCTYPE:
			return None, _Route(["spine.sync.initial.answer"], [initial_sync.answer])
		if row.topic == KEYS_TOPIC and row.document_type == KEY_DOCTYPE:
			return None, _Route(_KEYS_ROUTE, [trusted_keys.receive])
		config = self.settings["routes"].get(row.topic, {}).get(row.document_type)
		rule = sync_rules.for_message(self.settings, row.topic, row.document_type)
		if not config and rule:
			return None, _Route([], [], sync_rule=rule)
		if not config:
			unknown = (
				""
				if frappe.db.exists("DocType", row.document_type)
				else f" ({row.document_type} is not a DocType on this site)"
			)
			return (
				f"no handler configured for topic {row.topic} and DocType {row.document_type}{unknown}",
				None,
			)
		installed = frappe.get_installed_apps()
		handlers = []
		for path in config["handlers"]:
			try:
				handlers.append(resolve(path, installed))
			except HandlerConfigError as e:
				handlers.append(_broken_handler(e))
		# a sync rule applies message by message: with one, the row's handlers get messages one by one too
		batch = bool(config.get("batch")) and not rule
		return None, _Route(config["handlers"], handlers, batch, config, sync_rule=rule)

	def _run_one(self, row, route: _Route, span: str | None = None) -> tuple[Exception, str] | None:
		"""Run the sync rule and the handlers for one message inside a savepoint; returns the failure
		only if a handler also ended the transaction (then nothing is recorded yet). A request gets
		its reply (or error reply) written in the same savepoint."""
		body = json.loads(row.message)
		is_request = responder.is_request(body)
		if is_request and (late := responder.expired(body)):
			self._marked.setdefault(("Skipped", late), []).append(row.name)
			return None
		savepoint = self._savepoint()
		started = time.monotonic()
		# what the handlers save is published in this message's trace (under its handling span, if any)
		frappe.flags.spine_traceparent = span or (body.get("Header") or {}).get("TraceParent")
		try:
			if route.sync_rule:
				try:
					note = sync_apply.apply(body, route.sync_rule, row.message_id, self._woken)
					self._notes[row.name] = note
					self._measure(metrics.inc, "spine_sync_outcomes_total", 1, topic=row.topic,
						outcome="unchanged" if note.endswith("nothing saved") else note.split()[1])  # fmt: skip
				except sync_apply.SyncSkipped as e:
					self._measure(
						metrics.inc, "spine_sync_outcomes_total", 1, topic=row.topic, outcome="skip"
					)
					if not route.handlers:
						raise
					self._notes[row.name] = f"sync: skipped ({e.reason})"
			answer = None
			for handler in route.handlers:
				result = handler(body if not route.batch else [body])
				answer = result if answer is None else answer
			if is_request:
				responder.reply(body, answer)
		except SkipMessage as e:
			frappe.db.rollback(save_point=savepoint)
			self._marked.setdefault(("Skipped", e.reason), []).append(row.name)
			return None
		except sync_apply.SyncWaiting as e:
			frappe.db.rollback(save_point=savepoint)
			self._record_waiting(row, e)
			return None
		except Exception as e:
			if self.ended.ended:
				return e, frappe.get_traceback()
			tb = frappe.get_traceback()
			frappe.db.rollback(save_point=savepoint)  # undo this message's effects only
			if is_request:  # the caller gets the error now; retrying would answer too late
				responder.reply_error(body, e)
				e = PermanentHandlerError(f"{type(e).__name__}: {e} (sent back as an error reply)")
			self._record_failure(row, e, tb)
			return None
		finally:
			frappe.flags.spine_synced_docs = None
			frappe.flags.spine_traceparent = None
			self._measure(
				metrics.observe, "spine_handler_seconds", time.monotonic() - started, topic=row.topic
			)
		if not self.ended.ended:
			self._processed.append(row.name)
		return None

	def _run_group(self, rows: list, route: _Route, retry: bool) -> tuple[Exception, str] | None:
		"""Call the batch handlers with ``rows``; on failure try once more, then halve until found."""
		rows = [r for r in rows if (r.topic, r.kafka_key) not in self.blocked_keys]
		if not rows:
			return None
		bodies = [json.loads(r.message) for r in rows]
		savepoint = self._savepoint()
		started = time.monotonic()
		try:
			for handler in route.handlers:
				handler(bodies)
			self._measure(
				metrics.observe, "spine_handler_seconds", time.monotonic() - started, topic=rows[0].topic
			)
		except Exception as e:
			if self.ended.ended:
				return e, frappe.get_traceback()
			tb = frappe.get_traceback()
			frappe.db.rollback(save_point=savepoint)
			if retry:
				return self._run_group(rows, route, retry=False)
			if len(rows) == 1:
				self._record_failure(rows[0], e, tb)
				return None
			half = len(rows) // 2
			failure = self._run_group(rows[:half], route, retry=False)
			if self.ended.ended:
				return failure
			return self._run_group(rows[half:], route, retry=False)
		if not self.ended.ended:
			self._processed.extend(r.name for r in rows)
		return None

	def _settle_ended(self, rows: list, route: _Route, failure: tuple[Exception, str] | None) -> int:
		"""A handler committed or rolled back the batch transaction itself: settle ``rows`` and stop.

		Messages earlier in the batch committed with the handler's commit, or are Pending again after
		its rollback (their effects undone with them). ``rows`` are not run again: their handler
		already ran; they are marked Processed, or failed if it raised.
		"""
		_SELF_COMMITTING.update(route.paths)
		what = "committed" if self.ended.committed else "rolled back"
		log.warning(
			"Spine processor on %s: handler %s %s the transaction itself (message %s, %s %s); its messages "
			"are now handled one per transaction. Handlers should not commit: Spine commits their effects "
			"together with the message status.",
			frappe.local.site, ", ".join(route.paths), what, rows[0].name, rows[0].document_type,
			rows[0].kafka_key,
		)  # fmt: skip
		committed = self.ended.committed
		earlier = self._processed if committed else []  # their effects committed with the handler's commit
		marked = self._marked if committed else {}
		self._processed, self._marked = [], {}
		self.finished = 0 if not committed else self.finished
		self.ended = _Ended(closing=True)
		if failure:
			frappe.db.rollback()  # what the handler wrote after its own commit/rollback
			for row in rows:
				self._record_failure(row, *failure)
		else:
			earlier = earlier + [r.name for r in rows]
		if earlier:
			self._set_status(earlier, "Processed", None)
		for (status, reason), names in marked.items():
			self._set_status(names, status, reason)
		frappe.db.commit()  # nosemgrep: frappe-manual-commit - settle at once: the rows are no longer locked
		return self.finished

	def _run_alone(self, row, route: _Route) -> int:
		"""Handle ``row`` in a transaction of its own (for handlers that commit themselves)."""
		self.finished = 0
		self.ended = _Ended(closing=True)  # commits inside are expected now
		locked = frappe.db.sql(
			_LOCK_SQL, {"names": (row.name,), "now": now_datetime(), "limit": 1}, as_dict=True
		)
		if not locked:
			frappe.db.rollback()
			return 0
		row = locked[0]
		self._rows[row.name] = row
		body = json.loads(row.message)
		frappe.flags.spine_traceparent = (body.get("Header") or {}).get("TraceParent")
		try:
			for handler in route.handlers:
				handler([body] if route.batch else body)
		except Exception as e:
			tb = frappe.get_traceback()
			frappe.db.rollback()
			self._record_failure(row, e, tb)
		else:
			self._set_status([row.name], "Processed", None)
		finally:
			frappe.flags.spine_traceparent = None
		frappe.db.commit()  # nosemgrep: frappe-manual-commit - handler effects and status commit together
		return self.finished

	def _measure(self, record: Callable, name: str, value: float, **labels: Any) -> None:
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

	def _finished(self, names: list[int], status: str) -> None:
		now = now_datetime()
		for name in names:
			row = self._rows.get(name)
			if row is None:
				continue
			self._measure(metrics.inc, "spine_messages_handled_total", 1, topic=row.topic, status=status)
			self._measure(metrics.observe, "spine_stored_to_handled_seconds",
				(now - row.creation).total_seconds(), topic=row.topic)  # fmt: skip

	def _savepoint(self) -> str:
		self._savepoints += 1
		name = f"spine_msg_{self._savepoints}"
		frappe.db.savepoint(name)
		return name

	def _set_status(self, names: list[int], status: str, reason: str | None) -> None:
		self._finished(names, status)
		now = now_datetime()
		frappe.db.sql(STATUS_SQL, {"status": status, "now": now, "reason": reason, "names": tuple(names)})
		self.finished += len(names)

	def _write_notes(self) -> None:
		"""Append each row's note to its attempt history: one UPDATE per 500 rows."""
		stamp = f"{now_datetime():%Y-%m-%d %H:%M:%S}"
		notes = list(self._notes.items())
		for start in range(0, len(notes), 500):
			chunk = notes[start : start + 500]
			frappe.db.sql(
				"UPDATE `tabMessage Log` FORCE INDEX (PRIMARY) SET attempt_history = CONCAT_WS('\n', attempt_history, CASE name "
				+ " ".join(["WHEN %s THEN %s"] * len(chunk))
				+ " END) WHERE name IN %s",
				(*[v for name, note in chunk for v in (name, f"{stamp} {note}")], tuple(n for n, _ in chunk)),
			)
		self._notes = {}

	def _record_waiting(self, row, waiting: sync_apply.SyncWaiting) -> None:
		"""The message needs a document that is not here yet: it waits (holding back later messages of
		its document), is tried again when that document arrives or on the retry schedule, and is
		marked Failed if it is still waiting after the last attempt."""
		attempts = (row.attempts or 0) + 1
		now = now_datetime()
		if not self.policy.should_retry(attempts):
			self._record_failure(
				row, PermanentHandlerError(f"{waiting} (still, after {attempts} attempts)"), str(waiting)
			)
			return
		next_at = self.policy.next_attempt_at(attempts, now)
		self._measure(metrics.inc, "spine_sync_outcomes_total", 1, topic=row.topic, outcome="wait")
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

	def _record_failure(self, row, error: Exception, tb: str) -> None:
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
			self._measure(metrics.inc, "spine_messages_retried_total", 1, topic=row.topic)
		if status == "Failed":
			self._rows.setdefault(row.name, row)
			self._finished([row.name], "Failed")
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

	def _commit(self) -> None:
		if self._processed:
			self._set_status(self._processed, "Processed", None)
		for (status, reason), names in self._marked.items():
			self._set_status(names, status, reason)
		self._write_notes()
		sync_apply.wake(self._woken)
		self._processed, self._marked, self._woken = [], {}, set()
		self.ended.closing = True
		frappe.db.commit()  # nosemgrep: frappe-manual-commit - the batch's effects and statuses commit together


def _broken_handler(error: HandlerConfigError) -> Callable[[Any], None]:
	def raise_config_error(_body: Any) -> None:
		raise error

	return raise_config_error


def _own_client_id() -> str | None:
	kafka = frappe.conf.get("kafka")
	return kafka.get("client.id") if isinstance(kafka, dict) else None
