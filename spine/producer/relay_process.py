"""The ``spine-relay`` process: wakes the moment a transaction that captured events commits (the
relay's ``kick`` pushes to a Redis list it blocks on), keeps one producer for its whole life,
publishes with ``relay.drain``, looks for due retries every few seconds, and stops cleanly on a
signal. ``serve`` runs it for one site (``--site``), ``serve_site`` is the bench-wide relay's task
for one site.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import frappe

from spine import compat, db_connection, logs, metrics
from spine.kafka.publisher import Publisher, shared_publisher
from spine.producer import signing_key
from spine.producer.relay import (
	_ALIVE_KEY,
	_WAKE_KEY,
	ALIVE_SECONDS,
	REPORT_SECONDS,
	drain,
	pending_count,
	report_backlog,
	stop_draining,
)
from spine.settings import broker, installed

log = logs.logger("spine.producer.relay")

# The relay process: how long it sleeps without a kick, and how often it looks for due retries.
IDLE_WAIT_SECONDS = 2
RETRY_SCAN_SECONDS = 5.0
IDLE_SCAN_SECONDS = (
	30.0  # ... while no row is Pending (a new one comes with a kick; the scheduler drains too)
)


def serve(site: str, metrics_port: int | None = None) -> None:
	"""``spine-relay --site S``: publish this site's events as they are committed, until
	SIGTERM/SIGINT/SIGQUIT.

	The first signal finishes the current pass and exits; a second one exits at once. Serves
	Prometheus metrics on ``metrics_port`` (or the kafka block's ``spine.metrics.port``). Raises
	``KafkaConfigError`` or ``BrokerUnavailable`` (before publishing anything) when the site's
	kafka block is unusable or the broker does not answer.
	"""
	stop = _StopFlag()
	stop.install()
	frappe.init(site=site)
	frappe.connect()
	try:
		frappe.set_user("Administrator")
		publisher = shared_publisher(broker.check_reachable().producer)  # refuses to start without a broker
		broker.serve_metrics(metrics_port, "spine-relay")
		publish_until(publisher, lambda: stop.requested)
	finally:
		frappe.destroy()


def serve_site(site: str, stop: threading.Event) -> None:
	"""The bench-wide relay's task for one site: as ``serve``, until ``stop`` is set. Raises
	``SiteNotServed`` where Spine is not installed, and what ``serve`` raises."""
	frappe.init(site=site)
	frappe.connect()
	try:
		installed.require_spine()
		frappe.set_user("Administrator")
		publish_until(shared_publisher(broker.check_reachable().producer), stop.is_set)
	finally:
		frappe.destroy()


def publish_until(publisher: Publisher, stopped: Callable[[], bool]) -> None:
	"""Publish the current site's events as they are committed (woken by ``kick``; due retries every
	few seconds) until ``stopped()``; a lost database connection is reopened and the pass done again."""
	site = frappe.local.site
	cache = compat.cache()
	wake, alive = cache.make_key(_WAKE_KEY), cache.make_key(_ALIVE_KEY)
	log.info("spine-relay@%s: publishing committed events as they come (pid %s)", site, os.getpid())
	outage = db_connection.Outage(f"spine-relay@{site}")
	_announce_key(outage)
	last_scan = next_report = 0.0
	scan_every = RETRY_SCAN_SECONDS
	metrics.set_gauge("spine_process_up", 1, site=site, process="spine-relay")
	try:
		while not stopped():
			cache.set(alive, os.getpid(), ex=ALIVE_SECONDS)
			if metrics.enabled() and time.monotonic() >= next_report:
				next_report = time.monotonic() + REPORT_SECONDS
				try:
					db_connection.call(report_backlog, outage)
				except Exception as e:  # the gauges wait; publishing goes on (or meets the outage itself)
					log.debug("spine-relay@%s: backlog gauges not read: %s", site, e)
			woken = cache.blpop([wake], timeout=IDLE_WAIT_SECONDS) is not None
			if not woken and time.monotonic() - last_scan < scan_every:
				continue
			last_scan = time.monotonic()
			try:
				# with nothing Pending, nothing can come due before the next kick: look rarely
				scan_every = (
					RETRY_SCAN_SECONDS if _pass(publisher, woken) or pending_count() else IDLE_SCAN_SECONDS
				)
			except Exception as e:
				if not db_connection.is_lost(e):
					raise
				# the pass's transaction is gone: rows it published but could not mark stay Pending and are
				# published again (the consumer drops the copy by message id)
				outage.lost(e, f"reconnecting and publishing again within {RETRY_SCAN_SECONDS:.0f}s")
				last_scan = 0.0 if _try_reconnect() else time.monotonic()
				continue
			outage.back()
	finally:
		try:
			compat.cache().delete_value(_ALIVE_KEY)
		except Exception:
			pass  # Redis is away: the key expires in ALIVE_SECONDS
		metrics.set_gauge("spine_process_up", 0, site=site, process="spine-relay")
		log.info("spine-relay@%s: stopped", site)


def _announce_key(outage: db_connection.Outage) -> None:
	"""Publish the site's key if it was made before the site had a broker (``signing_key.announce``).
	Never raises: a key not announced now is logged, and the relay publishes anyway; a connection lost
	meanwhile is replaced (seen: a KILL right after start made the relay's rollback raise, and it died)."""

	def announce() -> None:
		if signing_key.announce():
			frappe.db.commit()  # nosemgrep: frappe-manual-commit - the key's outbox row, published next

	try:
		db_connection.call(announce, outage)
	except Exception as e:
		log.warning(
			"spine-relay@%s: the signing key could not be announced on spine.keys (%s); events are "
			"published anyway", frappe.local.site, e,
		)  # fmt: skip
		try:
			frappe.db.rollback()
		except Exception:
			_try_reconnect()  # the connection died too: the first pass finds a new one


def _pass(publisher: Publisher, woken: bool) -> int:
	frappe.db.rollback()  # a fresh snapshot: rows committed since the last pass must be visible
	published = drain(publisher)
	if woken and not published and not compat.has_after_commit():
		# Frappe v14 kicks just before COMMIT: look again once the transaction is visible
		for pause in (0.02, 0.1, 0.5):
			time.sleep(pause)
			frappe.db.rollback()
			if published := drain(publisher):
				break
	return published


def _try_reconnect() -> bool:
	try:
		db_connection.reconnect()
		return True
	except Exception:
		return False  # the server is still away: the next retry scan tries again


class _StopFlag:
	"""Two-stage stop: the first signal ends the loop after the current batch; the second exits now."""

	requested = False

	def install(self) -> None:
		for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
			signal.signal(sig, self._on_signal)

	def _on_signal(self, *_: Any) -> None:
		if self.requested:
			raise SystemExit(1)
		self.requested = True
		stop_draining()
