"""The bench-wide ``spine-relay``, ``eventdispatcher`` and ``jsonworker``: one set of processes for
every site of the bench (or the sites named), each site served on its own."""

from __future__ import annotations

import functools
import json
import os
import socket
from collections.abc import Collection

import frappe

from spine import logs, metrics
from spine.benchwide.sites import scan
from spine.benchwide.supervisor import SiteState, Supervisor
from spine.consumer.processes import Child, dispatch_site, run_group, worker_main

log = logs.logger(__name__)

STATES_TTL_SECONDS = 30  # a process that died stops being reported this long after its last scan


def relay(only: Collection[str] = (), metrics_port: int | None = None) -> None:
	"""``bench spine-relay``: publish every served site's events as they are committed, until signalled."""
	from spine.producer import relay as site_relay
	from spine.producer import relay_process

	logs.to_terminal()
	if metrics_port:
		metrics.serve(metrics_port)
	supervisor = Supervisor(
		"spine-relay", relay_process.serve_site, only=only, on_states=StatePublisher("spine-relay")
	)
	supervisor.run_until_signalled(on_stop=site_relay.stop_draining)


def dispatchers(only: Collection[str], queue: str, numworkers: int, metrics_port: int | None = None) -> None:
	"""``bench eventdispatcher``: ``numworkers`` processes, each dispatching every served site (one
	consumer per site in its site's group), until signalled."""
	if metrics_port:
		metrics.serve(metrics_port)
	run_group(
		[Child(f"eventdispatcher-{i}", _dispatcher, (i, tuple(only), queue)) for i in range(numworkers)]
	)


def _dispatcher(index: int, only: tuple[str, ...], queue: str) -> None:
	process = f"eventdispatcher-{index}"
	Supervisor(
		process, functools.partial(dispatch_site, index, queue), only=only, on_states=StatePublisher(process)
	).run_until_signalled()


def workers(
	only: Collection[str], queue: str, numworkers: int, burst: bool = False, metrics_port: int | None = None
) -> None:
	"""``bench jsonworker``: ``numworkers`` RQ workers executing the jobs of every served site's queue,
	the sites taken in turn."""
	if metrics_port:
		metrics.serve(metrics_port)
	sites = functools.partial(servable_sites, tuple(only))
	run_group(
		[
			Child(f"jsonworker-{i}", worker_main, (i, queue, burst, sites, numworkers))
			for i in range(numworkers)
		]
	)


def servable_sites(only: Collection[str] = ()) -> list[str]:
	"""The sites of the bench (or of ``only``) a bench-wide process serves now."""
	return [site for site, view in scan(".", only).items() if view.servable]


class StatePublisher:
	"""Writes what a process does with each site to the bench's queue Redis, for ``spine-status``."""

	def __init__(self, process: str):
		from frappe.utils.background_jobs import generate_qname, get_redis_conn

		with frappe.init_site():
			self.connection = get_redis_conn()
			self.key = generate_qname(f"spine:served:{process}:{socket.gethostname()}:{os.getpid()}")
		self.process = process

	def __call__(self, states: dict[str, SiteState]) -> None:
		pipe = self.connection.pipeline()
		pipe.delete(self.key)
		if states:
			pipe.hset(self.key, mapping={site: json.dumps(s.as_dict()) for site, s in states.items()})
		pipe.expire(self.key, STATES_TTL_SECONDS)
		pipe.execute()


def served_states() -> dict[str, dict[str, dict]]:
	"""By site, what each running bench-wide process reports doing with it: ``{site: {process:
	{"state", "reason", "since", "retry_at"}}}``. Needs ``frappe.init`` (any site, or the bench's)."""
	from frappe.utils.background_jobs import generate_qname, get_redis_conn

	connection = get_redis_conn()
	prefix = generate_qname("spine:served:")
	found: dict[str, dict[str, dict]] = {}
	for key in connection.scan_iter(match=f"{prefix}*", count=500):
		process = key.decode()[len(prefix) :].split(":")[0]
		for site, state in connection.hgetall(key).items():
			found.setdefault(site.decode(), {})[process] = json.loads(state)
	return found
