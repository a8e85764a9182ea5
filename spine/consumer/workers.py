"""The jsonworker's children: RQ workers that run each job in their own process, keep every site's
Frappe state apart, follow the sites they serve, share the workers fairly between sites, and
requeue at once the jobs of workers that died on this host.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence

import frappe
import redis
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from spine import logs, metrics
from spine.consumer.queue import shared_queue_name, site_queue_name, while_job_runs
from spine.consumer.site_contexts import SiteContexts

log = logs.logger(__name__)

PLAIN_HEARTBEAT_SECONDS = 5.0  # at most one plain worker heartbeat this often (its key lives 105 s)
FAIR_SHARE_SECONDS = 1.0  # how soon a worker looks again while a site is left out for its share


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
		while True:
			try:
				worker.work(
					burst=burst, with_scheduler=True, logging_level="WARNING", dequeue_strategy="round_robin"
				)
			except redis.exceptions.RedisError as e:  # RQ's own teardown, after it lost Redis
				log.debug("jsonworker-%s: RQ's teardown failed: %s", index, e)
			if burst or worker._stop_requested:
				break
			# RQ ends its loop on a Redis error anywhere but its dequeue (a job's heartbeat or bookkeeping
			# when Redis restarts): the messages of that job are read again by the dispatcher's audit
			log.warning(
				"jsonworker-%s: the queue's Redis went away while a job ran; working again once it answers "
				"(the job's messages are handed over again: nothing is lost)", index,
			)  # fmt: skip
			_wait_for(connection)
			with contextlib.suppress(redis.exceptions.RedisError):
				worker.register_death()  # its entry from before, so the worker can register again
	finally:
		worker.site_contexts.close_all()


def _wait_for(connection, longest: float = 5.0) -> None:
	"""Until Redis answers a PING (backing off up to ``longest`` seconds between tries)."""
	wait = 0.5
	while True:
		try:
			connection.ping()
			return
		except redis.exceptions.RedisError:
			time.sleep(wait)
			wait = min(longest, wait * 2)


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
		# RQ's forking worker heartbeats while its work horse runs; without a fork, one thread of the
		# worker does it for whichever job runs (a thread per job cost every message its start), so a
		# job of a worker that died is recognised as abandoned (and retried) as soon as with RQ.
		if getattr(self, "_beater", None) is None:
			self._beat_lock = threading.Lock()
			self._beater = threading.Thread(target=self._beat, name="spine-job-heartbeat", daemon=True)
			self._beater.start()
		with self._beat_lock:
			self._running_job = job
		others = [q.key for q in self.queues if q.name != queue.name]
		while_job_runs(lambda: others and any(_lengths(self.connection, others)))
		try:
			site = job.args[0] if job.args and isinstance(job.args[0], str) else None
			return self.site_contexts.run(site, super().execute_job, job, queue)
		finally:
			while_job_runs(None)
			with self._beat_lock:  # no heartbeat of a job that ended (it would write its key again)
				self._running_job = None

	def _beat(self) -> None:
		"""Every ``job_monitoring_interval`` seconds, the heartbeats of the job running now, if any."""
		while True:
			time.sleep(self.job_monitoring_interval)
			with self._beat_lock:
				job = getattr(self, "_running_job", None)
				if job is None:
					continue
				try:
					self.maintain_heartbeats(job)
				except Exception:
					log.warning("jsonworker: heartbeat for job %s failed", job.id, exc_info=True)

	def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
		# RQ sends a plain heartbeat (two Redis commands) at every dequeue, one per job; the worker's key
		# lives worker_ttl + 60 s, so one every few seconds keeps it alive as surely
		if timeout is None and pipeline is None:
			if time.monotonic() - getattr(self, "_plain_heartbeat_at", 0.0) < PLAIN_HEARTBEAT_SECONDS:
				return
			self._plain_heartbeat_at = time.monotonic()
		super().heartbeat(timeout, pipeline)

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
