"""Hand dispatcher batches to an RQ queue as JSON jobs. Plain Python (rq + redis), no Frappe.

Each batch becomes one job per Kafka partition. A partition's job depends on that
partition's previous job while it is still waiting or running, so with several jsonworkers
the messages of one partition are still stored in offset order. Jobs are JSON (no pickles),
and retried when they fail or their worker dies, so a message in Redis reaches the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

# Retried after 5 s, 10 s, 30 s, 1 min, 2 min, then every 5 min: outlives a database restart.
JOB_RETRY = Retry(max=12, interval=[5, 10, 30, 60, 120, 300])
JOB_TIMEOUT = 120
RESULT_TTL = 3600
_UNFINISHED = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def json_queue(name: str, connection: Redis) -> Queue:
	"""The RQ queue ``name`` with JSON (de)serialisation, as both dispatcher and jsonworker use it."""
	return Queue(name, connection=connection, serializer=JSONSerializer)


class JobHandOver:
	"""``submit(records)`` enqueues ``func(site, records_of_one_partition, queue_name)`` jobs.

	Returns only after Redis accepted every job of the batch (or raises).
	"""

	def __init__(self, queue: Queue, func: str, site: str):
		self.queue = queue
		self.func = func
		self.site = site
		self.last_job: dict[tuple[str, int], str] = {}

	def __call__(self, records: Sequence[dict[str, Any]]) -> list[str]:
		groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
		for rec in records:
			groups.setdefault((rec["topic"], rec["partition"]), []).append(rec)
		ids = []
		for tp, group in groups.items():
			job = self.queue.enqueue(
				self.func,
				self.site,
				group,
				self.queue.name,
				depends_on=self._unfinished(self.last_job.get(tp)),
				retry=JOB_RETRY,
				job_timeout=JOB_TIMEOUT,
				result_ttl=RESULT_TTL,
				failure_ttl=7 * 24 * 3600,
				description=f"store {len(group)} messages of {tp[0]}[{tp[1]}] offsets {group[0]['offset']}-{group[-1]['offset']}",
			)
			self.last_job[tp] = job.id
			ids.append(job.id)
		return ids

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
