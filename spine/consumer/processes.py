"""The consumer commands' entry points: ``eventdispatcher`` and ``jsonworker`` for one site.

Each starts ``--numworkers`` children (``process_group``) and waits for them; each child initialises
the site itself (never shares a database connection across fork): the dispatchers'
(``dispatchers``) and the workers' (``workers``) children. The bench-wide commands
(``spine.benchwide.serve``) run the same children for every site.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import frappe

from spine import logs
from spine.consumer.dispatchers import dispatch_site, dispatcher_main
from spine.consumer.process_group import Child, run_group
from spine.consumer.workers import _Worker, worker_main

__all__ = [
	"Child",
	"_Worker",
	"dispatch_site",
	"dispatcher_main",
	"run_dispatchers",
	"run_group",
	"run_workers",
	"worker_main",
]

log = logs.logger(__name__)


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


@contextmanager
def _site(site: str) -> Iterator[None]:
	frappe.init(site=site)
	frappe.connect()
	try:
		yield
	finally:
		frappe.destroy()
