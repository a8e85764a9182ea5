"""A jsonworker serving several sites leaves a site out while that site already runs its share of
jobs, so a worker stays free for another site's next message (real Redis, RQ's own registries)."""

from __future__ import annotations

import time

from tests.bench.helpers import unique


def test_a_site_running_its_share_is_left_out_while_other_sites_are_served(frappe_site, redis_url):
	import redis
	from rq.registry import StartedJobRegistry
	from rq.serializers import JSONSerializer

	from spine.consumer.processes import _Worker
	from spine.consumer.queue import site_queue_name

	connection = redis.Redis.from_url(redis_url)
	queue, sites = unique("fair"), ["busy.test", "idle.test"]
	worker = _Worker([], connection=connection, serializer=JSONSerializer, name=unique("w"))
	worker.serve_sites(queue, lambda: sites, share=1)
	busy, idle = site_queue_name(queue, "busy.test"), site_queue_name(queue, "idle.test")
	assert [q.name for q in worker._fair_share()][:2] == [busy, idle]

	StartedJobRegistry(queue=worker.queues[0]).add(_FakeJob("job-of-busy"), ttl=60)  # busy runs one job
	listened = [q.name for q in worker._fair_share()]
	assert busy not in listened and idle in listened, "busy has its share: the worker waits for others"

	worker.reorder_queues(worker.queues[1])  # idle's job taken: idle's turn goes to the end
	assert [q.name for q in worker._turns][-1] == idle

	sites.remove("idle.test")  # alone on the bench: a site may use every worker
	worker._sites_checked = time.monotonic() - 60
	worker._follow_sites()
	assert busy in [q.name for q in worker._fair_share()]


class _FakeJob:
	def __init__(self, job_id: str):
		self.id = job_id
