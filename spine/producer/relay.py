"""The relay: publish pending Outbound Message Log rows and mark them only on the broker's report.

Who runs it: ``bench --site S spine-relay``, a long-running process that wakes the moment a
transaction that captured events commits (``kick`` pushes to a Redis list it blocks on), keeps
one producer for its whole life, and looks for due retries every few seconds. Without that
process a kick queues a relay job on the ``short`` queue for the bench's usual ``bench worker``,
and the per-minute scheduler drains as a safety net either way.

One drainer per site at a time (a MariaDB named lock), so two relays never duplicate or
reorder; a drainer that finds the lock taken leaves a "dirty" mark that the lock holder honours
before it stops, so no kick is lost.

Per-document order: rows are taken in capture order (``name`` is a sequence), and a row is
not sent while an earlier row of the same Kafka key is still waiting for a retry.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import frappe
from frappe.utils import now_datetime

from spine import compat, envelope, logs, message_log, metrics, spans
from spine.config.topics import KEYS_TOPIC
from spine.errors import KafkaConfigError
from spine.kafka.publisher import Delivery, OutRecord, Publisher, shared_publisher
from spine.producer import registry_records, shape
from spine.settings import broker

log = logs.logger(__name__)

BATCH_SIZE = 1000
# Stop draining after this long and hand over to a fresh job (RQ's short-queue timeout is 300 s).
MAX_DRAIN_SECONDS = 200
ALIVE_SECONDS = 5
REPORT_SECONDS = 5.0  # how often the backlog gauges are read (metrics on only)

_DIRTY_KEY = "spine:relay:dirty"
_QUEUED_KEY = "spine:relay:queued"
_WAKE_KEY = "spine:relay:wake"
_ALIVE_KEY = "spine:relay:alive"
_JOB = "spine.producer.relay.drain"


def kick() -> None:
	"""Ask for a relay pass now. Cheap and safe to call often (one Redis round trip).

	Wakes the relay process if one runs for this site; otherwise queues at most one relay job.
	"""
	frappe.flags.spine_relay_kick_registered = False
	try:
		cache = compat.cache()
		wake = cache.make_key(_WAKE_KEY)
		pipe = cache.pipeline()
		pipe.set(cache.make_key(_DIRTY_KEY), 1)
		pipe.lpush(wake, 1)
		pipe.ltrim(wake, 0, 0)
		pipe.exists(cache.make_key(_ALIVE_KEY))
		alive = pipe.execute()[-1]
		if not alive and cache.set(cache.make_key(_QUEUED_KEY), 1, nx=True, ex=600):
			frappe.enqueue(_JOB, queue="short", is_async=True)
	except Exception:
		log.warning(
			"Spine relay kick on %s failed (Redis unreachable?); pending events will be published by the "
			"per-minute scheduler",
			getattr(frappe.local, "site", None),
			exc_info=True,
		)


def drain_scheduled() -> None:
	"""Per-minute scheduler entry: the safety net behind the after-commit kicks."""
	drain()


def stop_draining() -> None:
	"""The process is stopping: drains end after their current batch."""
	global _stopping
	_stopping = True


_stopping = False  # set by the relay process's stop signal: drains end after their current batch


def drain(publisher: Publisher | None = None, *, max_seconds: float = MAX_DRAIN_SECONDS) -> int:
	"""Publish every due Pending Outbound row; returns how many were confirmed by the broker.

	Returns at once (after leaving a dirty mark) if another drainer holds the site's relay
	lock; that drainer runs another pass before it stops.
	"""
	compat.cache().delete_value(_QUEUED_KEY)
	_mark_dirty()
	published = 0
	started = time.monotonic()
	while _is_dirty():
		if not _try_lock():
			return published
		try:
			_clear_dirty()
			publisher = publisher or _site_publisher()
			if publisher is None:
				return published
			published += _drain_until_empty(publisher, started + max_seconds)
		finally:
			_release_lock()
		if time.monotonic() > started + max_seconds:
			kick()  # hand over to a new job instead of holding a worker forever
			break
	return published


def _drain_until_empty(publisher: Publisher, deadline: float) -> int:
	published = 0
	while time.monotonic() < deadline and not _stopping:
		rows = message_log.due_outbound(BATCH_SIZE)
		if not rows:
			break
		for compacted in {shape.SCHEMA_TOPIC, KEYS_TOPIC} & {r.topic for r in rows}:
			broker.ensure_topic(compacted, f"{compacted} is published as a plain topic, not compacted")
		started = time.time_ns()
		cloud_events = _cloud_events()
		deliveries = _publish(publisher, rows, [_record(r, cloud_events) for r in rows])
		if spans.available():
			for row in rows:
				spans.record(
					"spine publish", row.trace_parent, started, topic=row.topic, message_id=row.message_id
				)
		done = record_deliveries(rows, deliveries)
		published += done
		frappe.db.commit()  # nosemgrep: frappe-manual-commit - each batch's outcome must be durable
		if done:
			broker.doorbell().ring(r.topic for r in rows)  # resting dispatchers of the bench look now
		if metrics.enabled():
			_count(rows, deliveries)
		if rows.saw_all:
			# every Pending row was read: what was committed since also left the dirty mark (kick), so the
			# caller's next pass finds it; asking again now would only find nothing (2 queries per commit)
			break
	return published


def _count(rows: list[dict[str, Any]], deliveries: list[Delivery]) -> None:
	"""Metrics of a committed batch: rows read for the first time, confirmed and refused deliveries."""
	site, now = frappe.local.site, now_datetime()
	for row, d in zip(rows, deliveries, strict=True):
		if not row.attempts:
			metrics.inc("spine_events_captured_total", site=site, topic=row.topic)
		if d.ok:
			metrics.inc("spine_messages_published_total", site=site, topic=row.topic)
			metrics.observe(
				"spine_commit_to_published_seconds",
				(now - row.creation).total_seconds(),
				site=site,
				topic=row.topic,
			)
		else:
			metrics.inc("spine_publish_failures_total", site=site, topic=row.topic)


def report_backlog() -> None:
	"""Set the outbox gauges (metrics on only): rows waiting and the age of the oldest."""
	site = frappe.local.site
	metrics.set_gauge("spine_outbox_pending", pending_count(), site=site)
	metrics.set_gauge(
		"spine_oldest_pending_seconds", oldest_pending_age() or 0, site=site, direction="Outbound"
	)
	frappe.db.rollback()  # end the read


def record_deliveries(rows: list[dict[str, Any]], deliveries: list[Delivery]) -> int:
	"""Mark confirmed rows Published (with partition/offset); schedule a retry for the others.

	A failed row blocks later rows of its key (they are not marked, so they stay Pending and
	wait behind it). Returns the number of rows marked Published.
	"""
	failed_keys: set[str] = set()
	confirmed = []
	published = 0
	for row, d in zip(rows, deliveries, strict=True):
		if d.ok and row.kafka_key not in failed_keys:
			confirmed.append((row.name, d.partition, d.offset))
			continue
		if d.ok:  # published after an earlier row of its key failed: keep the record true, say so
			message_log.published_out_of_turn(row.name, d.partition, d.offset)
			published += 1
			continue
		failed_keys.add(row.kafka_key)
		next_step = message_log.delivery_failed(row, d.error, d.retriable)
		log.warning(
			"Spine relay: event %s (%s) to topic %s not delivered: %s; %s",
			row.name, row.kafka_key, row.topic, d.error, next_step,
		)  # fmt: skip
	message_log.published(confirmed)
	return published + len(confirmed)


def _record(row: dict[str, Any], cloud_events: bool = True) -> OutRecord:
	"""The Kafka record of an outbox row; headers come from the row's columns (no JSON re-parse), the
	CloudEvents ones too unless the block turns them off (``spine.cloudevents``): ``ce_time`` is the
	row's moment, which is the envelope's Header.Timestamp in the site's time zone."""
	headers = envelope.Envelope(
		doctype=row.document_type,
		event=row.event,
		payload={},
		message_id=row.message_id,
		docname=row.document_name,
		origin_site=row.origin_site,
		schema_version=envelope.SCHEMA_VERSION,
		timestamp=_site_time(row.creation) if cloud_events else None,
	).headers(cloud_events=cloud_events)
	return OutRecord(
		ref=row.name, topic=row.topic, key=row.kafka_key, value=row.message.encode(), headers=headers
	)


def _publish(publisher: Publisher, rows: list, records: list[OutRecord]) -> list[Delivery]:
	"""Publish the rows' records; rows a schema registry holds back are not sent, their delivery the
	reason (retried on the relay's schedule, as any failed delivery)."""
	framed, held = registry_records.as_records(rows, records)
	sent = iter(publisher.publish([r for r in framed if r is not None]))
	return [Delivery(records[i].ref, error=held[i], retriable=True) if r is None else next(sent)
		for i, r in enumerate(framed)]  # fmt: skip


def _cloud_events() -> bool:
	try:
		return bool(broker.site_settings().spine["spine.cloudevents"])
	except KafkaConfigError:
		return True


def _site_time(moment) -> str | None:
	"""A row's naive moment (the site's time) as ISO 8601 with the site's offset."""
	if moment is None:
		return None
	from zoneinfo import ZoneInfo

	from frappe.utils import get_system_timezone

	return moment.replace(tzinfo=ZoneInfo(get_system_timezone())).isoformat()


def _site_publisher() -> Publisher | None:
	try:
		settings = broker.site_settings()
	except KafkaConfigError as e:
		log.error("Spine relay cannot publish: %s. Events stay Pending until this is fixed.", e)
		return None
	return shared_publisher(settings.producer)


def _lock_name() -> str:
	return f"spine_relay_{frappe.conf.db_name}"[:64]


def _try_lock() -> bool:
	return bool(frappe.db.sql("SELECT GET_LOCK(%s, 0)", (_lock_name(),))[0][0])


def _release_lock() -> None:
	frappe.db.sql("SELECT RELEASE_LOCK(%s)", (_lock_name(),))


def _mark_dirty() -> None:
	compat.cache().set(compat.cache().make_key(_DIRTY_KEY), 1)


def _clear_dirty() -> None:
	compat.cache().delete(compat.cache().make_key(_DIRTY_KEY))


def _is_dirty() -> bool:
	return bool(compat.cache().get(compat.cache().make_key(_DIRTY_KEY)))


def pending_count() -> int:
	"""How many Outbound rows wait to be published (read off the status index: Frappe's ``count``
	took 140 ms on a 900,000-row log)."""
	return frappe.db.sql(
		"SELECT COUNT(*) FROM `tabMessage Log` WHERE direction = 'Outbound' AND status = 'Pending'"
	)[0][0]


def oldest_pending_age(now: datetime.datetime | None = None) -> float | None:
	"""Seconds since the oldest Pending Outbound row was captured, or None if none waits."""
	oldest = frappe.db.get_value(
		"Message Log", {"direction": "Outbound", "status": "Pending"}, "min(creation)"
	)
	return ((now or now_datetime()) - oldest).total_seconds() if oldest else None
