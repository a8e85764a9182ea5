"""Process groups: a command's ``--numworkers`` children, each forked, stopped with the parent.

SIGTERM, SIGINT and SIGQUIT to the command are passed on to every child once (each finishes what it
is doing); a child never outlives the command (the kernel sends it SIGTERM when the parent dies, even
by SIGKILL); a child's ``SpineError`` is one line on stderr, its traceback in ``logs/spine.log``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from spine import logs, metrics
from spine.errors import SpineError

log = logs.logger(__name__)


@dataclass(frozen=True)
class Child:
	"""One process of a group: ``target(*args)`` in a fork of the command, shown as ``name``."""

	name: str
	target: Callable[..., None]
	args: tuple = ()


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
