"""Hand dispatcher batches to an RQ queue as JSON jobs. Plain Python (rq + redis), no Frappe.

Each batch becomes one job per Kafka partition, carrying the offset its messages continue from, so
the job stores them only if nothing before them is missing. A partition's job depends on that
partition's previous job while it is still waiting or running, so with several jsonworkers
the messages of one partition are still stored in offset order. Jobs are JSON (no pickles),
and retried when they fail or their worker dies, so a message in Redis reaches the database.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

# Retried after 5 s, 10 s, 30 s, 1 min, 2 min, then every 5 min: outlives a database restart.
JOB_RETRY = Retry(max=12, interval=[5, 10, 30, 60, 120, 300])
JOB_TIMEOUT = 120
RESULT_TTL = 3600
_UNFINISHED = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
_ENDED = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


def json_queue(name: str, connection: Redis) -> Queue:
	"""The RQ queue ``name`` with JSON (de)serialisation, as both dispatcher and jsonworker use it."""
	return Queue(name, connection=connection, serializer=JSONSerializer)


class JobHandOver:
	"""``handover(records, starts)`` enqueues ``func(site, records_of_one_partition, queue_name, position)``
	jobs, ``position`` being ``{"group": group, "after": offset the part continues from}``.

	Returns only after Redis accepted every job of the batch (or raises). ``vanished`` tells a
	job that can no longer store its messages, so the dispatcher reads them again.
	"""

	def __init__(self, queue: Queue, func: str, site: str, group: str = ""):
		self.queue = queue
		self.func = func
		self.site = site
		self.group = group
		self.last_job: dict[tuple[str, int], str] = {}

	def __call__(
		self, records: Sequence[dict[str, Any]], starts: dict[tuple[str, int], int] | None = None
	) -> dict[tuple[str, int], str]:
		groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
		for rec in records:
			groups.setdefault((rec["topic"], rec["partition"]), []).append(rec)
		ids = {}
		for tp, group in groups.items():
			after = (starts or {}).get(tp, group[0]["offset"])
			job = self.queue.enqueue(
				self.func,
				self.site,
				group,
				self.queue.name,
				{"group": self.group, "after": after},
				depends_on=self._unfinished(self.last_job.get(tp)),
				retry=JOB_RETRY,
				job_timeout=JOB_TIMEOUT,
				result_ttl=RESULT_TTL,
				failure_ttl=7 * 24 * 3600,
				description=f"store {len(group)} messages of {tp[0]}[{tp[1]}] offsets {group[0]['offset']}-{group[-1]['offset']}",
			)
			self.last_job[tp] = job.id
			ids[tp] = job.id
		if ids and self.group:
			# for spine-status: how far each partition was handed over (lost with Redis, like the jobs)
			self.queue.connection.hset(
				handed_key(self.group),
				mapping={f"{t}:{p}": groups[(t, p)][-1]["offset"] + 1 for t, p in ids},
			)
		return ids

	def vanished(self, job_id: str) -> bool:
		"""Whether ``job_id`` can no longer store its messages: gone from Redis, ended, or taken off
		the queue without reaching a worker (a worker killed between the two)."""
		try:
			job = Job.fetch(job_id, connection=self.queue.connection, serializer=JSONSerializer)
		except NoSuchJobError:
			return True
		status = job.get_status(refresh=False)
		if status in _ENDED:
			return True
		if status != JobStatus.QUEUED or self._waiting(job_id):
			return False
		time.sleep(0.5)  # a worker may be between taking it and registering it: look again
		return job.get_status() == JobStatus.QUEUED and not self._waiting(job_id)

	def forget(self, tp: tuple[str, int]) -> None:
		self.last_job.pop(tp, None)

	def _waiting(self, job_id: str) -> bool:
		conn = self.queue.connection
		in_queue = conn.execute_command("LPOS", self.queue.key, job_id) is not None
		return in_queue or conn.zscore(StartedJobRegistry(queue=self.queue).key, job_id) is not None

	def _unfinished(self, job_id: str | None) -> str | None:
		if not job_id:
			return None
		try:
			status = Job.fetch(
				job_id, connection=self.queue.connection, serializer=JSONSerializer
			).get_status()
		except NoSuchJobError:
			return None
		return job_id if status in _UNFINISHED else None


def handed_key(group: str) -> str:
	"""The Redis hash (on the queue's Redis) of ``topic:partition`` → offset after the last message
	``group`` handed over."""
	return f"spine:handed:{group}"
