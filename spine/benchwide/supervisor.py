"""Run one task per site in threads of one process, each site on its own.

A site whose task fails (its broker is down, its kafka block is bad, its database does not
answer) is logged by name and started again after a growing pause while the other sites go on;
a site that cannot be served now (maintenance mode, a migrate, no kafka block) waits without
a task; a changed kafka block restarts the site's task. Threads keep Frappe's per-site state
apart: ``frappe.local`` is per thread.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from spine import logs
from spine.benchwide.sites import SiteView, scan
from spine.errors import SiteNotServed
from spine.retry import RetryPolicy

log = logs.logger(__name__)

Task = Callable[[str, threading.Event], None]
"""``task(site, stop)``: serve ``site`` until ``stop`` is set; raising means it failed."""

SCAN_SECONDS = 2.0
NOT_SERVED_SECONDS = 5.0  # a site without Spine is looked at again this often (it may be installing)
HEALTHY_SECONDS = 60.0  # a task that ran this long starts its backoff afresh when it fails
STOP_SECONDS = 30.0
RESTART = RetryPolicy(max_attempts=2**31 - 1, base_seconds=5, max_seconds=60)


@dataclass
class SiteState:
	"""What the process does with one site: ``starting``, ``serving``, ``waiting`` (cannot be served
	now) or ``failing`` (its task failed; ``retry_at`` says when it starts again)."""

	state: str
	reason: str = ""
	since: float = field(default_factory=time.time)
	retry_at: float | None = None

	def as_dict(self) -> dict[str, Any]:
		return {"state": self.state, "reason": self.reason, "since": self.since, "retry_at": self.retry_at}


@dataclass
class _Slot:
	thread: threading.Thread
	stop: threading.Event
	settings_key: str
	started: float
	error: BaseException | None = None
	why_stopped: str = ""


class Supervisor:
	"""Serves every servable site of the bench (or of ``only``) with ``task`` until ``run``'s
	``stop`` is set; ``states`` tells what it does with each site (``on_states`` gets them
	after every scan, for ``spine-status``)."""

	def __init__(
		self,
		process: str,
		task: Task,
		*,
		only: Collection[str] = (),
		sites_path: str = ".",
		scan_seconds: float = SCAN_SECONDS,
		restart: RetryPolicy = RESTART,
		on_states: Callable[[dict[str, SiteState]], None] | None = None,
	):
		self.process = process
		self.task = task
		self.only = tuple(only)
		self.sites_path = sites_path
		self.scan_seconds = scan_seconds
		self.restart = restart
		self.on_states = on_states
		self.states: dict[str, SiteState] = {}
		self._slots: dict[str, _Slot] = {}
		self._failures: dict[str, int] = {}
		self._retry_at: dict[str, float] = {}
		self._failed_with: dict[str, str] = {}  # the settings a site failed with: new ones retry at once

	def run(self, stop: threading.Event) -> None:
		"""Scan every ``scan_seconds`` until ``stop`` is set, then stop every site's task and wait for it."""
		try:
			while not stop.is_set():
				self.scan_once()
				stop.wait(self.scan_seconds)
		finally:
			self.stop_all()

	def run_until_signalled(self, on_stop: Callable[[], None] | None = None) -> None:
		"""``run`` in the main thread: the first SIGTERM/SIGINT/SIGQUIT stops every site's task (each
		finishes what it is doing; ``on_stop`` is called first), a second one exits at once."""
		stop = threading.Event()

		def on_signal(*_: Any) -> None:
			if stop.is_set():
				log.warning("%s: second stop signal, exiting without waiting", self.process)
				raise SystemExit(1)
			log.info("%s: stop requested; every site finishes what it is doing", self.process)
			if on_stop:
				on_stop()
			stop.set()

		for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
			signal.signal(sig, on_signal)
		self.run(stop)

	def scan_once(self) -> None:
		"""Look at the bench's sites once: start, stop and restart site tasks as they need."""
		self._reap()
		try:
			views = scan(self.sites_path, self.only)
		except OSError as e:
			log.error("%s: cannot list the sites in %s (%s); looking again", self.process, self.sites_path, e)
			return
		for site in [s for s in self._slots if s not in views]:
			self._stop(site, "the site is gone")
		for site in [s for s in self.states if s not in views and s not in self._slots]:
			del self.states[site]
		for view in views.values():
			self._follow(view)
		if self.on_states:
			try:
				self.on_states(dict(self.states))
			except Exception as e:
				log.debug("%s: site states not published: %s", self.process, e)

	def stop_all(self, timeout: float = STOP_SECONDS) -> None:
		"""Stop every site's task and wait up to ``timeout`` seconds for them to finish."""
		for slot in self._slots.values():
			slot.stop.set()
		deadline = time.monotonic() + timeout
		for site, slot in self._slots.items():
			slot.thread.join(max(0.0, deadline - time.monotonic()))
			if slot.thread.is_alive():
				log.warning("%s: %s did not stop within %.0fs", self.process, site, timeout)
		self._slots.clear()

	def _follow(self, view: SiteView) -> None:
		site, slot = view.site, self._slots.get(view.site)
		if not view.servable:
			if slot:
				self._stop(site, view.reason)
			self._set(site, "waiting", view.reason, quiet=view.reason.startswith("it has no kafka block"))
			self._failures.pop(site, None)
			self._retry_at.pop(site, None)
			return
		if slot:
			if slot.settings_key != view.settings_key and not slot.stop.is_set():
				self._stop(site, "its kafka block changed; starting again with the new one")
			elif self.states[site].state == "starting":
				self._set(site, "serving", "")  # said once it outlived a scan (a site without Spine does not)
			return
		if self._failed_with.get(site) == view.settings_key and time.monotonic() < self._retry_at.get(
			site, 0
		):
			return
		self._start(view)

	def _start(self, view: SiteView) -> None:
		stop = threading.Event()
		slot = _Slot(threading.Thread(), stop, view.settings_key, time.monotonic())
		slot.thread = threading.Thread(
			target=self._run_task, args=(view.site, slot), name=f"{self.process}@{view.site}", daemon=True
		)
		self._slots[view.site] = slot
		old = self.states.get(view.site)
		self.states[view.site] = SiteState("starting", old.reason if old else "")
		slot.thread.start()

	def _run_task(self, site: str, slot: _Slot) -> None:
		try:
			self.task(site, slot.stop)
		except BaseException as e:
			slot.error = e

	def _stop(self, site: str, why: str) -> None:
		slot = self._slots[site]
		if not slot.stop.is_set():
			log.info("%s: stopping %s: %s", self.process, site, why)
			slot.why_stopped = why
			slot.stop.set()

	def _reap(self) -> None:
		for site, slot in list(self._slots.items()):
			if slot.thread.is_alive():
				continue
			del self._slots[site]
			if slot.stop.is_set() and slot.error is None:
				self._retry_at.pop(site, None)  # stopped on purpose: the next scan decides again
				continue
			self._failed(site, slot)

	def _failed(self, site: str, slot: _Slot) -> None:
		error = slot.error
		self._failed_with[site] = slot.settings_key
		if isinstance(error, SiteNotServed):
			delay = NOT_SERVED_SECONDS
			self._set(site, "waiting", str(error))
		else:
			ran = time.monotonic() - slot.started
			failures = 1 if ran >= HEALTHY_SECONDS else self._failures.get(site, 0) + 1
			self._failures[site] = failures
			delay = self.restart.delay(failures).total_seconds()
			reason = f"{type(error).__name__}: {error}" if error else "its task ended by itself"
			log.error(
				"%s: serving %s failed (%s); trying it again in %.0fs, the other sites go on",
				self.process, site, reason, delay, exc_info=error if not _is_spine_error(error) else None,
			)  # fmt: skip
			self._set(site, "failing", reason)
		self._retry_at[site] = time.monotonic() + delay
		self.states[site].retry_at = time.time() + delay

	def _set(self, site: str, state: str, reason: str, quiet: bool = False) -> None:
		old = self.states.get(site)
		if old and old.state == state and old.reason == reason:
			return
		self.states[site] = SiteState(state, reason)
		if state == "serving":
			log.info("%s: serving %s", self.process, site)
		elif state == "waiting" and not (old and old.state == "starting" and old.reason == reason):
			(log.info if quiet or old is None else log.warning)(
				"%s: not serving %s: %s", self.process, site, reason
			)


def _is_spine_error(error: BaseException | None) -> bool:
	from spine.errors import SpineError

	return isinstance(error, SpineError)
