"""Hand dispatcher batches to an RQ queue as JSON jobs. Plain Python (rq + redis), no Frappe.

Each batch becomes one job, carrying per Kafka partition the offset its messages continue from, so
the job stores a partition's messages only if nothing before them is missing. A job depends on
the previous job of each of its partitions while that is still waiting or running, so with
several jsonworkers the messages of one partition are still stored in offset order. Jobs are JSON (no pickles),
and retried when they fail or their worker dies, so a message in Redis reaches the database.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

# Retried after 5 s, 10 s, 30 s, 1 min, 2 min, then every 5 min: outlives a database restart.
JOB_RETRY = Retry(max=12, interval=[5, 10, 30, 60, 120, 300])
JOB_TIMEOUT = 120
# A stored batch's job is deleted when it succeeds: its result (a count) is read by nobody, and
# keeping it cost every message a results-stream entry and a registry update in Redis. The
# dispatcher takes a job that is gone for one that ended, and checks what was stored.
RESULT_TTL = 0
_UNFINISHED = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
_ENDED = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


class HandOver(Protocol):
	"""Where batches go (an RQ queue): not durable, so each batch is followed until it is stored."""

	def __call__(
		self, records: list[dict[str, Any]], starts: dict[tuple[str, int], int]
	) -> dict[tuple[str, int], str]:
		"""Hand ``records`` over; ``starts[tp]`` is the offset the partition's part of the batch
		continues from. Returns a job id per partition; raises if nothing was accepted."""

	def vanished(self, job_id: str) -> bool:
		"""Whether the job can no longer store its messages (gone from Redis, or ended)."""

	def busy(self) -> bool:
		"""Whether a batch handed over now would wait behind others before a worker takes it."""

	def forget(self, tp: tuple[str, int]) -> None:
		"""Drop what the hand-over remembers of a partition (it is read again or moved away)."""


def json_queue(name: str, connection: Redis) -> Queue:
	"""The RQ queue ``name`` with JSON (de)serialisation, as both dispatcher and jsonworker use it."""
	return Queue(name, connection=connection, serializer=JSONSerializer)


class JobHandOver:
	"""``handover(records, starts)`` enqueues one ``func(site, records, queue_name, position)`` job,
	``position`` being ``{"group": group, "starts": [[topic, partition, offset its part continues
	from], ...]}`` (see ``stored.job_parts``).

	Returns only after Redis accepted the job (or raises). ``vanished`` tells a job that can no
	longer store its messages, so the dispatcher reads them again; ``busy`` whether a job handed
	over now would wait behind others.
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
		ends: dict[tuple[str, int], tuple[int, int]] = {}
		for rec in records:
			tp = (rec["topic"], rec["partition"])
			ends[tp] = (ends.get(tp, (rec["offset"],))[0], rec["offset"])
		if not ends:
			return {}
		starts = starts or {}
		earlier = {self.last_job[tp] for tp in ends if tp in self.last_job}
		# a partition's messages are stored in offset order: after its previous job, if unfinished
		waits_for = [j for j in sorted(earlier) if self._unfinished(j)]
		options = {
			"retry": JOB_RETRY,
			"job_timeout": JOB_TIMEOUT,
			"result_ttl": RESULT_TTL,
			"failure_ttl": 7 * 24 * 3600,
			"description": f"store {len(records)} messages of "
			+ ", ".join(f"{t}[{p}]@{first}-{last}" for (t, p), (first, last) in sorted(ends.items())),
		}
		args = (self.func, self.site, list(records), self.queue.name,
			{"group": self.group, "starts": [[t, p, starts.get((t, p), first)] for (t, p), (first, _) in ends.items()]})  # fmt: skip
		# for spine-status: how far each partition was handed over (lost with Redis, like the jobs)
		handed = {f"{t}:{p}": last + 1 for (t, p), (_, last) in ends.items()}
		if waits_for:  # RQ watches the jobs it depends on in a pipeline of its own
			job = self.queue.enqueue(*args, depends_on=waits_for, **options)
			if self.group:
				self.queue.connection.hset(handed_key(self.group), mapping=handed)
		else:  # the usual case: the job and the record of it in one round trip
			with self.queue.connection.pipeline() as pipe:
				job = self.queue.enqueue(*args, pipeline=pipe, **options)
				if self.group:
					pipe.hset(handed_key(self.group), mapping=handed)
				pipe.execute()
		for tp in ends:
			self.last_job[tp] = job.id
		return {tp: job.id for tp in ends}

	def busy(self) -> bool:
		"""Whether jobs wait in the queue for a worker: one handed over now would wait behind them."""
		return self.queue.count > 0

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

	def _unfinished(self, job_id: str) -> bool:
		# the status field alone: fetching the job would read its whole payload (the previous batch)
		status = self.queue.connection.hget(Job.key_for(job_id), "status")
		return status is not None and status.decode() in {s.value for s in _UNFINISHED}


def handed_key(group: str) -> str:
	"""The Redis hash (on the queue's Redis) of ``topic:partition`` → offset after the last message
	``group`` handed over."""
	return f"spine:handed:{group}"
