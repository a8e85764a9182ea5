"""The eventdispatcher's children: one site's dispatcher (per-site command) or a site's task in a
bench-wide one, each a static member of the site's consumer group (``spine.config.membership``),
and the watch that kicks processing while due rows wait.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import frappe

from spine import db_connection, logs, metrics
from spine.config import membership
from spine.consumer.queue import json_queue, site_queue_name

if TYPE_CHECKING:
	from spine.kafka.poll_loop import Dispatcher

log = logs.logger(__name__)


def dispatcher_main(index: int, site: str, queue: str) -> None:
	"""A per-site ``eventdispatcher`` child: dispatch ``site`` until SIGTERM/SIGINT/SIGQUIT."""
	frappe.init(site=site)
	frappe.connect()
	try:
		with _member_slot() as slot:
			dispatcher = _site_dispatcher(index, site, queue, slot=slot)
			dispatcher.install_signal_handlers()
			dispatcher.run()
	finally:
		frappe.destroy()


def dispatch_site(index: int, queue: str, site: str, stop: threading.Event) -> None:
	"""A bench-wide ``eventdispatcher``'s task for one site: as ``dispatcher_main`` until ``stop`` is
	set. Raises ``SiteNotServed`` where Spine is not installed, ``KafkaConfigError`` or
	``BrokerUnavailable`` when the site's kafka block or broker cannot work."""
	from spine.settings import broker, installed

	frappe.init(site=site)
	frappe.connect()
	try:
		installed.require_spine()
		broker.check_reachable()
		with _member_slot() as slot:
			dispatcher = _site_dispatcher(index, site, queue, should_stop=stop.is_set, slot=slot)
			try:
				dispatcher.run()
			finally:
				if dispatcher.doorbell:
					broker.doorbell().forget(dispatcher.doorbell)
				broker.config_bell().forget(dispatcher.config_bell)
	finally:
		frappe.destroy()


@contextmanager
def _member_slot() -> Iterator[int]:
	"""This process's slot among the current site's dispatchers on this host, for its static group
	membership (``spine.config.membership``), held while the block runs."""
	slot = membership.claim_slot(frappe.get_site_path("locks"), "spine-eventdispatcher")
	try:
		yield slot.number
	finally:
		slot.release()


def _site_dispatcher(
	index: int, site: str, queue: str, should_stop: Callable[[], bool] | None = None, slot: int = 0
) -> Dispatcher:
	"""The current site's dispatcher number ``index``, handing over to its queue of ``queue``, in
	group membership ``slot`` on this host."""
	from spine.config.kafka import redact
	from spine.config.topics import INITIAL_SYNC_TOPIC, reply_topic
	from spine.consumer.offsets import StoredPositions
	from spine.kafka.handover import JobHandOver
	from spine.kafka.poll_loop import Dispatcher
	from spine.rpc import client, replies
	from spine.settings import broker, config_cache

	settings = broker.site_settings()
	name = site_queue_name(queue, site)
	group = settings.consumer["group.id"]
	outage = db_connection.Outage(f"eventdispatcher-{index}@{site}")
	replies_on = reply_topic(site)
	# before subscribing: a topic made after the subscription is noticed only at a metadata refresh
	client.ensure_reply_topic()
	broker.ensure_topic(INITIAL_SYNC_TOPIC, "requests for an initial sync may be answered late")

	class HandOver(JobHandOver):
		def __call__(self, records: list, starts: dict | None = None) -> dict:
			replies.deliver(records, replies_on)  # waiting callers get their replies now; the rows follow
			return super().__call__(records, starts)

	def topics() -> list[str]:
		def read() -> list[str]:
			config_cache.forget_local()
			topics = config_cache.consumer_settings()["topics"]
			frappe.db.rollback()  # end the read transaction so the next refresh sees new config
			return topics

		return db_connection.call(read, outage)

	consumer_conf = dict(settings.consumer)
	# a static member: restarted after a crash, it takes its partitions back at once
	member = membership.instance_id(consumer_conf, site=site, host=socket.gethostname(), slot=slot)
	consumer_conf.pop("group.instance.id", None)
	if member:
		consumer_conf["group.instance.id"] = member
	metrics.set_gauge("spine_process_up", 1, site=site, process="eventdispatcher")

	def report_lag(lag: dict) -> None:
		for (topic, partition), behind in lag.items():
			metrics.set_gauge("spine_consumer_lag", behind, site=site, topic=topic, partition=partition)

	log.info(
		"eventdispatcher-%s@%s: group %s%s on %s, handing over to RQ queue %s",
		index, site, group, f" as static member {member}" if member else "",
		redact(settings.consumer)["bootstrap.servers"], name,
	)  # fmt: skip
	idle_pause = settings.spine["spine.consumer.idle.pause.ms"] / 1000
	config_bell = broker.config_bell().waiter()
	config_bell.topics = frozenset({site})  # rung with the names of sites whose config was saved
	return Dispatcher(
		consumer_conf,
		topics,
		HandOver(json_queue(name), "spine.consumer.intake.store_batch", site, group),
		StoredPositions(group, outage),
		refresh_seconds=2.0,  # a new Spine Consumer Config row is followed within seconds
		name=f"eventdispatcher-{index}@{site}",
		idle_pause=idle_pause,
		on_cycle=_ProcessingWatch(name, outage) if index == 0 else None,
		report_lag=report_lag if metrics.enabled() else None,
		should_stop=should_stop,
		doorbell=broker.doorbell().waiter() if idle_pause else None,
		config_bell=config_bell,
		admin_conf=settings.admin,  # topic ids: stored positions outlive expired group offsets
	)


class _ProcessingWatch:
	"""Every few seconds, kick a processing pass if due Inbound rows wait and none is queued or
	running: processing that stopped (its job failed on a dead connection, its worker died, a retry
	came due) resumes without the per-minute scheduler, which skips sites Frappe considers dormant."""

	EVERY_SECONDS = 3.0

	def __init__(self, queue_name: str, outage: db_connection.Outage):
		self.queue_name = queue_name
		self.outage = outage
		self.next_at = 0.0

	def __call__(self) -> None:
		from spine.consumer import processor

		if time.monotonic() < self.next_at:
			return
		self.next_at = time.monotonic() + self.EVERY_SECONDS
		try:
			if db_connection.call(lambda: processor.stalled(self.queue_name), self.outage):
				processor.kick(self.queue_name)
			if metrics.enabled():
				db_connection.call(processor.report_backlog, self.outage)
		except Exception as e:
			log.debug("eventdispatcher: processing check failed: %s", e)
