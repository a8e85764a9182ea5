"""Long-running consumer processes: ``eventdispatcher`` and ``jsonworker``.

Each starts ``--numworkers`` child processes and waits for them; each child initialises the
site itself (never shares a database connection across fork). Signals to the parent
(SIGTERM, SIGINT, SIGQUIT — supervisor's stopsignal) are passed on to the children, which
finish what they are doing and exit.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import frappe
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from spine import db_connection, logs, metrics
from spine.config import membership
from spine.consumer.queue import json_queue, shared_queue_name, site_queue_name, while_job_runs
from spine.consumer.site_contexts import SiteContexts
from spine.errors import SpineError

if TYPE_CHECKING:
	from spine.kafka.poll_loop import Dispatcher

log = logs.logger(__name__)

FAIR_SHARE_SECONDS = 1.0  # how soon a worker looks again while a site is left out for its share


@dataclass(frozen=True)
class Child:
	"""One process of a group: ``target(*args)`` in a fork of the command, shown as ``name``."""

	name: str
	target: Callable[..., None]
	args: tuple = ()


def run_dispatchers(site: str, queue: str, numworkers: int, metrics_port: int | None = None) -> None:
	"""``eventdispatcher``: ``numworkers`` consumers of one group, handing batches to ``queue``.

	Refuses to start (``KafkaConfigError``, ``BrokerUnavailable``) when the site's kafka block is
	unusable or the broker does not answer, before any process is forked. Serves Prometheus
	metrics on ``metrics_port`` (or the kafka block's ``spine.metrics.port`` + 1) if one is set.
	"""
	from spine.settings import broker

	with _site(site):
		broker.check_reachable()
		broker.serve_metrics(metrics_port, "eventdispatcher")
	run_group([Child(f"eventdispatcher-{i}", dispatcher_main, (i, site, queue)) for i in range(numworkers)])


def run_workers(
	site: str, queue: str, numworkers: int, burst: bool = False, metrics_port: int | None = None
) -> None:
	"""``jsonworker``: ``numworkers`` RQ workers executing the JSON jobs of ``queue``; metrics as
	``run_dispatchers`` (the kafka block's ``spine.metrics.port`` + 2)."""
	from spine.settings import broker

	with _site(site):
		broker.serve_metrics(metrics_port, "jsonworker")
	only = (site,)
	run_group(
		[
			Child(f"jsonworker-{i}", worker_main, (i, queue, burst, lambda: only, numworkers))
			for i in range(numworkers)
		]
	)


def run_group(children: list[Child], while_running: Callable[[], None] | None = None) -> None:
	"""Run ``children`` until they exit; exits 1 if one failed.

	SIGTERM, SIGINT and SIGQUIT to this process are passed on to every child (each finishes what
	it is doing); a child never outlives this process (the kernel sends it SIGTERM when the
	parent dies, even by SIGKILL). ``while_running`` is called about every 0.2 s meanwhile.
	"""
	logs.to_terminal()
	if len(children) == 1 and while_running is None:
		_child_entry(children[0], in_fork=False)
		return
	ctx = multiprocessing.get_context("fork")
	procs = [ctx.Process(target=_child_entry, args=(c,), name=c.name) for c in children]
	for proc in procs:
		proc.start()

	def forward(signum, _frame):
		for proc in procs:
			if proc.is_alive():
				os.kill(proc.pid, signum)

	for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
		signal.signal(sig, forward)
	gone: set[int] = set()
	while any(p.is_alive() for p in procs):
		if while_running:
			while_running()
		for proc in procs:
			proc.join(0.2 / len(procs))
			if proc.exitcode is not None and proc.pid not in gone:
				gone.add(proc.pid)
				metrics.process_exited(proc.pid)
	failed = [p.name for p in procs if p.exitcode not in (0, None, -signal.SIGTERM)]
	if failed:
		log.error("%s exited with an error; see logs/spine.log", ", ".join(failed))
		sys.exit(1)


def _child_entry(child: Child, in_fork: bool = True) -> None:
	"""Run a child; Spine's own errors become one line on stderr (traceback in logs/spine.log)."""
	if in_fork:
		_die_with_parent()
	try:
		child.target(*child.args)
	except SpineError as e:
		log.error("%s stopped: %s", child.name, e, exc_info=True)
		print(f"{child.name}: {e}", file=sys.stderr)
		sys.exit(1)


def _die_with_parent() -> None:
	"""Ask Linux to SIGTERM this process when its parent dies (no orphaned dispatchers or workers).

	The child also leaves the parent's process group: a Ctrl-C in the terminal then reaches only
	the parent, which passes it on once (a second signal would mean "stop now" to the child).
	"""
	os.setpgid(0, 0)
	try:
		import ctypes

		ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
	except (OSError, AttributeError):
		pass  # not Linux: children stop when the signals forwarded by the parent reach them


@contextmanager
def _site(site: str) -> Iterator[None]:
	frappe.init(site=site)
	frappe.connect()
	try:
		yield
	finally:
		frappe.destroy()


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


def worker_main(
	index: int, queue: str, burst: bool, sites: Callable[[], Sequence[str]], numworkers: int = 1
) -> None:
	"""A ``jsonworker`` child: execute the jobs of ``sites()``' queues of ``queue`` (and of the
	queue all sites shared before), taking the sites in turn; ``sites`` is asked again every few
	seconds, so a site that comes or goes is followed without a restart. While several sites are
	served, one site's jobs run on at most ``numworkers - 1`` of the command's workers at once: a
	worker stays free for the next message of another site."""
	import spine.consumer.intake
	import spine.consumer.processor
	from spine.consumer.queue import keep_site_between_jobs

	keep_site_between_jobs()
	from frappe.utils.background_jobs import get_redis_conn

	with frappe.init_site():
		connection = get_redis_conn()
	worker = _Worker(
		[],
		connection=connection,
		serializer=JSONSerializer,
		name=f"spine-jsonworker-{os.getpid()}-{index}",
		maintenance_interval=30,  # notice a dead worker's job (and retry it) within a minute
		# an idle worker wakes every 30 s (RQ's default: 405 s) to run that maintenance: retrying
		# abandoned jobs and starting the scheduler that re-queues retries
		default_worker_ttl=45,
	)
	worker.serve_sites(queue, sites, share=max(1, numworkers - 1))
	worker._install_signal_handlers()  # before saying it runs: a stop signal from then on is a warm stop
	log.info("jsonworker-%s: executing jobs of RQ queues %s", index, ", ".join(worker.queue_names()))
	try:
		worker.work(burst=burst, with_scheduler=True, logging_level="WARNING", dequeue_strategy="round_robin")
	finally:
		worker.site_contexts.close_all()


class _Worker(SimpleWorker):
	"""An RQ worker that runs each job in its own process (no fork per job: the site's database
	connection and imported modules serve every job), keeps each site's Frappe state in its own
	context (a job of one site never sees another's), follows the sites it serves, and treats
	SIGQUIT (supervisor's stopsignal) as a warm shutdown, like SIGTERM: the current job finishes first."""

	SITES_SECONDS = 5.0

	def serve_sites(self, queue: str, sites: Callable[[], Sequence[str]], share: int = 1) -> None:
		"""Take the jobs of ``sites()``' queues of ``queue`` (asked again every ``SITES_SECONDS``), at
		most ``share`` of one site's jobs running at once on all workers while several sites are served."""
		self.site_queue = queue
		self.share = share
		self._turns: list[Queue] = []  # every served queue, in round-robin order
		self.sites = sites
		self.site_contexts = SiteContexts()
		self.served: tuple[str, ...] | None = None
		self._sites_checked = 0.0
		self._follow_sites()

	def _follow_sites(self) -> None:
		if time.monotonic() - self._sites_checked < self.SITES_SECONDS:
			return
		self._sites_checked = time.monotonic()
		try:
			served = tuple(sorted(self.sites()))
		except Exception as e:
			log.warning("jsonworker: cannot list the sites to serve (%s); keeping %s", e, self.served)
			return
		if served == self.served:
			return
		for site in set(self.served or ()) - set(served):
			self.site_contexts.close(site)
			metrics.set_gauge("spine_process_up", 0, site=site, process="jsonworker")
		for site in set(served) - set(self.served or ()):
			metrics.set_gauge("spine_process_up", 1, site=site, process="jsonworker")
		names = [site_queue_name(self.site_queue, s) for s in served] + [shared_queue_name(self.site_queue)]
		self.queues = [Queue(n, connection=self.connection, serializer=JSONSerializer) for n in names]
		self._ordered_queues = self.queues[:]
		self._turns = self.queues[:]
		if self.served is not None:
			log.info("jsonworker: now serving %s", ", ".join(served) or "no site")
			self._restart_scheduler()
		self.served = served

	def _restart_scheduler(self) -> None:
		# RQ's scheduler (moving retried jobs back to their queue) knows the queues it was started with
		if self.scheduler is None:
			return
		if self.scheduler._process and self.scheduler._process.is_alive():
			self.stop_scheduler()
		self._start_scheduler(logging_level="WARNING")

	def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
		while True:
			self._follow_sites()
			if timeout is None:  # burst: one look at every queue
				self._ordered_queues = self._turns[:]
				return super().dequeue_job_and_maintain_ttl(None, max_idle_time)
			self._ordered_queues = self._fair_share()
			if not self._ordered_queues:
				time.sleep(FAIR_SHARE_SECONDS)  # every site has its share running: look again soon
				continue
			# wait at most SITES_SECONDS (a new site's queue is listened to within seconds), and only a
			# moment while some site is left out for its share (it may be its turn again soon)
			wait = FAIR_SHARE_SECONDS if len(self._ordered_queues) < len(self._turns) else self.SITES_SECONDS
			result = super().dequeue_job_and_maintain_ttl(
				max(1, min(timeout, int(wait))), max_idle_time=max(1, int(wait))
			)
			if result is not None:
				return result

	def reorder_queues(self, reference_queue) -> None:
		"""Round robin over every served queue (the listened-to list may leave some out for a moment)."""
		if reference_queue in self._turns:
			pos = self._turns.index(reference_queue)
			self._turns = self._turns[pos + 1 :] + self._turns[: pos + 1]

	def _fair_share(self) -> list[Queue]:
		"""The queues to listen to now: every one, less those of sites already running ``share`` jobs
		while other sites are served too."""
		if len(self.served or ()) < 2:
			return self._turns[:]
		try:
			running = _counts(self.connection, [StartedJobRegistry(queue=q).key for q in self._turns])
		except Exception:
			return self._turns[:]
		return [q for q, n in zip(self._turns, running, strict=True) if n < self.share]

	def _install_signal_handlers(self):
		super()._install_signal_handlers()
		signal.signal(signal.SIGQUIT, self.request_stop)

	def execute_job(self, job, queue):
		# RQ's forking worker heartbeats while its work horse runs; without a fork, a thread does it,
		# so a job of a worker that died is recognised as abandoned (and retried) as soon as with RQ.
		done = threading.Event()

		def beat() -> None:
			while not done.wait(self.job_monitoring_interval):
				try:
					self.maintain_heartbeats(job)
				except Exception:
					log.warning("jsonworker: heartbeat for job %s failed", job.id, exc_info=True)

		beater = threading.Thread(target=beat, name="spine-job-heartbeat", daemon=True)
		beater.start()
		others = [q.key for q in self.queues if q.name != queue.name]
		while_job_runs(lambda: others and any(_lengths(self.connection, others)))
		try:
			site = job.args[0] if job.args and isinstance(job.args[0], str) else None
			return self.site_contexts.run(site, super().execute_job, job, queue)
		finally:
			while_job_runs(None)
			done.set()
			beater.join(5)

	def get_heartbeat_ttl(self, job) -> int:
		return self.job_monitoring_interval + 60  # as RQ's forking worker: abandoned jobs found in 90 s

	def clean_registries(self):
		# RQ lets one worker clean a queue's registries every 15 minutes, so a job whose worker
		# was killed would wait that long. A stored batch must not: every maintenance (30 s) jobs
		# of workers that died on this host are queued again at once, and RQ's own cleaning runs
		# (abandoned jobs retried, jobs stuck between queue and worker recovered).
		for queue in self.queues:
			_requeue_jobs_of_dead_local_workers(self, queue)
			self.connection.delete(queue.registry_cleaning_key)
		super().clean_registries()


def _lengths(connection, keys: list[str]) -> list[int]:
	pipe = connection.pipeline(transaction=False)
	for key in keys:
		pipe.llen(key)
	return pipe.execute()


def _counts(connection, keys: list[str]) -> list[int]:
	pipe = connection.pipeline(transaction=False)
	for key in keys:
		pipe.zcard(key)
	return pipe.execute()


def _requeue_jobs_of_dead_local_workers(worker: SimpleWorker, queue: Queue) -> None:
	registry = StartedJobRegistry(queue=queue)
	host = socket.gethostname()
	for job_id in registry.get_job_ids():
		try:
			job = Job.fetch(job_id, connection=worker.connection, serializer=JSONSerializer)
		except NoSuchJobError:
			registry.remove(job_id)
			continue
		owner = job.worker_name
		if not owner or owner == worker.name:
			continue
		hostname, pid = worker.connection.hmget(f"rq:worker:{owner}", "hostname", "pid")
		if hostname is not None and hostname.decode() != host:
			continue  # another machine's worker: its heartbeat tells (clean_registries)
		if pid is not None and _alive(int(pid)):
			continue
		registry.remove(job)
		queue.enqueue_job(job, at_front=True)  # it came before what waits now
		log.warning(
			"jsonworker: job %s (%s) was running in worker %s, which is gone; queued it again",
			job.id, job.description, owner,
		)  # fmt: skip


def _alive(pid: int) -> bool:
	try:
		os.kill(pid, 0)
	except ProcessLookupError:
		return False
	except PermissionError:
		return True
	return True
