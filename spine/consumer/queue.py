"""The jsonworkers' RQ queue as the site sees it: its bench-namespaced name, a JSON handle on it,
and how a job of that queue enters the site."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import frappe
from rq import Queue

# Set in a jsonworker process: it runs jobs without forking, so a job leaves the site's database
# connection open for the next one instead of connecting again (a connection per job costs more
# than most jobs).
_keep_site = False


# Set by a jsonworker serving several sites: whether another site's job waits for it, so a long
# processing pass of one site ends early and lets that job run (the pass continues after it).
_others_waiting: Callable[[], bool] | None = None


def while_job_runs(others_waiting: Callable[[], bool] | None) -> None:
	"""Called by a jsonworker before each job: how the job tells whether other sites' jobs wait."""
	global _others_waiting
	_others_waiting = others_waiting


def others_waiting() -> bool:
	"""Whether jobs of other sites wait for the worker running this job (False outside a jsonworker)."""
	try:
		return bool(_others_waiting and _others_waiting())
	except Exception:
		return False  # Redis away: the pass goes on as if alone


def keep_site_between_jobs() -> None:
	"""Called once by a non-forking worker process before its first job."""
	global _keep_site
	_keep_site = True


def site_queue_name(queue: str, site: str) -> str:
	"""The RQ queue of ``site``'s jobs, bench-namespaced as Frappe names its own
	(``<bench id>:spine:<queue>:<site>``). Each site has its own, so a jsonworker serving several
	sites takes their jobs in turn and one site's backlog never queues ahead of another's message."""
	from frappe.utils.background_jobs import generate_qname

	return generate_qname(f"spine:{queue}:{site}")


def shared_queue_name(queue: str) -> str:
	"""The queue every site's jobs went to before each site had its own (``<bench id>:spine:<queue>``);
	jsonworkers still take what waits there."""
	from frappe.utils.background_jobs import generate_qname

	return generate_qname(f"spine:{queue}")


def json_queue(name: str) -> Queue:
	"""The already-namespaced JSON queue ``name`` on the bench's queue Redis."""
	from frappe.utils.background_jobs import get_redis_conn

	from spine.kafka.handover import json_queue as make

	return make(name, get_redis_conn())


@contextmanager
def job_site(site: str) -> Iterator[None]:
	"""``site`` set up for one job, as Administrator, with fresh per-job state.

	Every job starts with Frappe's per-request state reset (flags, memoised cache reads, site
	config). In a jsonworker the database connection is kept across jobs (checked and reopened
	if the server closed it); elsewhere the site is torn down after the job.
	"""
	reuse = _keep_site and getattr(frappe.local, "site", None) == site and getattr(frappe.local, "db", None)
	if reuse:
		fresh_state(site)  # new flags, memo, user and caches; frappe.local.db stays
		_reconnect_if_closed()
	else:
		if getattr(frappe.local, "initialised", None):
			frappe.destroy()
		frappe.init(site)
		_remember_fresh_state(site)
		frappe.connect()
	frappe.set_user("Administrator")
	try:
		yield
	finally:
		if _keep_site:
			try:
				frappe.db.rollback()  # never carry an open transaction into the next job
			except Exception:
				frappe.destroy()
		else:
			frappe.destroy()


# What frappe.init leaves in frappe.local for a request, per site, captured right after a real init:
# each job gets copies of these (flags, logs, caches, user, session...), as frappe.init(force=True)
# would give it, without re-reading what does not change between jobs (the query builder, the module
# map from Redis); the site's config is read again when one of its files changed.
_KEPT = {"site", "sites_path", "site_path", "conf", "qb", "db", "initialised", "module_app", "app_modules",
	"all_apps", "dev_server"}  # fmt: skip
_fresh: dict[str, tuple[tuple, dict[str, Any]]] = {}


def fresh_state(site: str) -> None:
	"""Frappe's per-request state made new for the next job (or message) of ``site``."""
	known = _fresh.get(site)
	stamp = _config_stamp()
	if known is None or known[0] != stamp:
		db = frappe.local.db
		frappe.init(site, force=True)
		frappe.local.db = db
		_remember_fresh_state(site)
		return
	for name, value in known[1].items():
		setattr(frappe.local, name, copy.deepcopy(value))


def _remember_fresh_state(site: str) -> None:
	_fresh[site] = (
		_config_stamp(),
		{name: copy.deepcopy(value) for name, value in iter(frappe.local) if name not in _KEPT},
	)


def _config_stamp() -> tuple:
	"""When the site's and the bench's config files last changed (both are read by frappe.init)."""
	stamps = []
	for path in (
		frappe.get_site_path("site_config.json"),
		os.path.join(frappe.local.sites_path, "common_site_config.json"),
	):
		try:
			stamps.append(os.stat(path).st_mtime_ns)
		except OSError:
			stamps.append(None)
	return tuple(stamps)


def _reconnect_if_closed() -> None:
	conn = getattr(frappe.db, "_conn", None)
	if conn is not None:
		conn.ping(reconnect=True)
