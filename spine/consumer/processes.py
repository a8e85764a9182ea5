"""Long-running consumer processes: ``eventdispatcher`` and ``jsonworker``.

Each starts ``--numworkers`` child processes and waits for them; each child initialises the
site itself (never shares a database connection across fork). Signals to the parent
(SIGTERM, SIGINT, SIGQUIT — supervisor's stopsignal) are passed on to the children, which
finish what they are doing and exit.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable

import frappe
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from spine import logs
from spine.consumer.queue import json_queue, queue_name

log = logs.logger(__name__)


def run_dispatchers(site: str, queue: str, numworkers: int) -> None:
	"""``eventdispatcher``: ``numworkers`` consumers of one group, handing batches to ``queue``."""
	_run_children("eventdispatcher", numworkers, _dispatcher_main, site, queue)


def run_workers(site: str, queue: str, numworkers: int, burst: bool = False) -> None:
	"""``jsonworker``: ``numworkers`` RQ workers executing the JSON jobs of ``queue``."""
	_run_children("jsonworker", numworkers, _worker_main, site, queue, burst)


def _run_children(what: str, count: int, target: Callable, *args) -> None:
	_setup_logging()
	if count < 1:
		raise SystemExit(f"{what}: --numworkers must be at least 1 (got {count})")
	if count == 1:
		target(0, *args)
		return
	ctx = multiprocessing.get_context("fork")
	children = [ctx.Process(target=target, args=(i, *args), name=f"{what}-{i}") for i in range(count)]
	for child in children:
		child.start()

	def forward(signum, _frame):
		for child in children:
			if child.is_alive():
				os.kill(child.pid, signum)

	for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
		signal.signal(sig, forward)
	for child in children:
		child.join()
	failed = [c.name for c in children if c.exitcode not in (0, None)]
	if failed:
		log.error("%s: %s exited with an error", what, ", ".join(failed))
		sys.exit(1)


def _dispatcher_main(index: int, site: str, queue: str) -> None:
	from spine.config.kafka import redact
	from spine.kafka.handover import JobHandOver
	from spine.kafka.poll_loop import Dispatcher
	from spine.settings import broker, config_cache

	frappe.init(site=site)
	frappe.connect()
	try:
		settings = broker.site_settings()
		name = queue_name(queue)
		handover = JobHandOver(json_queue(name), "spine.consumer.intake.store_batch", site)

		def topics() -> list[str]:
			config_cache.forget_local()
			topics = config_cache.consumer_settings()["topics"]
			frappe.db.rollback()  # end the read transaction so the next refresh sees new config
			return topics

		consumer_conf = dict(settings.consumer)
		if consumer_conf.get("group.instance.id"):
			# static membership: each process needs its own id; a restarted process takes its
			# partitions back at once instead of waiting for the group to notice the old one died
			consumer_conf["group.instance.id"] = f"{consumer_conf['group.instance.id']}-{index}"
		dispatcher = Dispatcher(
			consumer_conf,
			topics,
			handover,
			min_commit_count=settings.spine["consumer.min.commit.count"],
			name=f"eventdispatcher-{index}@{site}",
		)
		dispatcher.install_signal_handlers()
		log.info(
			"eventdispatcher-%s@%s: group %s on %s, handing over to RQ queue %s",
			index, site, settings.consumer["group.id"], redact(settings.consumer)["bootstrap.servers"], name,
		)  # fmt: skip
		dispatcher.run()
	finally:
		frappe.destroy()


def _worker_main(index: int, site: str, queue: str, burst: bool) -> None:
	_preload_job_modules()
	frappe.init(site=site)
	try:
		from frappe.utils.background_jobs import get_redis_conn

		name = queue_name(queue)
		connection = get_redis_conn()
	finally:
		frappe.destroy()  # jobs init the site themselves; the worker keeps no connection across fork
	worker = _Worker(
		[Queue(name, connection=connection, serializer=JSONSerializer)],
		connection=connection,
		serializer=JSONSerializer,
		name=f"spine-jsonworker-{os.getpid()}-{index}",
		maintenance_interval=30,  # notice a dead worker's job (and retry it) within a minute
	)
	log.info("jsonworker-%s@%s: executing jobs of RQ queue %s", index, site, name)
	worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")


class _Worker(Worker):
	"""An RQ worker that also treats SIGQUIT (supervisor's stopsignal) as a warm shutdown."""

	def _install_signal_handlers(self):
		super()._install_signal_handlers()
		signal.signal(signal.SIGQUIT, self.request_stop)


def _preload_job_modules() -> None:
	"""Import what jobs use before RQ forks a work horse per job, so no job pays for the imports."""
	import frappe.database.mariadb.database
	import frappe.model.document
	import frappe.query_builder
	import frappe.utils.data

	import spine.consumer.intake
	import spine.consumer.processor


def _setup_logging() -> None:
	logs.to_terminal()
