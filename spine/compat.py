"""The one place that knows how the Frappe versions Spine supports differ (v14, v15, develop).

Everything else calls these functions instead of checking versions:

- ``cache()``: the site's Redis cache. v15 and develop expose it as ``frappe.cache``; v14 as
  the function ``frappe.cache()``.
- ``after_commit(fn)`` / ``after_rollback(fn)``: run ``fn`` once when the current transaction
  commits / rolls back. v15 and develop have ``frappe.db.after_commit`` and ``after_rollback``;
  v14 has neither: there ``after_commit`` runs ``fn`` from ``frappe.db``'s before-commit list,
  i.e. just before ``COMMIT`` (callers must tolerate that, see ``spine.producer.relay``), and
  ``after_rollback`` uses the rollback observers. A rolled-back transaction never runs its
  ``after_commit`` callbacks on any version.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import frappe

HAS_AFTER_COMMIT: bool | None = None  # decided on first use: frappe.db exists only once connected


def cache() -> Any:
	"""The site's ``RedisWrapper`` (``frappe.cache`` on v15+, ``frappe.cache()`` on v14)."""
	c = frappe.cache
	return c() if isinstance(c, types.FunctionType) else c


def has_after_commit() -> bool:
	"""Whether callbacks registered with ``after_commit`` run after COMMIT (v15+) or just before it (v14)."""
	global HAS_AFTER_COMMIT
	if HAS_AFTER_COMMIT is None:
		HAS_AFTER_COMMIT = hasattr(frappe.db, "after_commit")
	return HAS_AFTER_COMMIT


def after_commit(fn: Callable[[], Any]) -> None:
	"""Run ``fn`` once after the current transaction commits (v14: right before its COMMIT)."""
	if has_after_commit():
		frappe.db.after_commit.add(fn)
		return
	pending = frappe.local.before_commit
	# v14 never empties this list; drop our entries that already ran so a long-lived process
	# (a data import committing per row) does not call every earlier kick at each commit
	pending[:] = [entry for entry in pending if not getattr(entry[0], "spine_done", False)]
	pending.append([_once(fn), None, None])


def after_rollback(fn: Callable[[], Any]) -> None:
	"""Run ``fn`` once if the current transaction is rolled back."""
	if has_after_commit():
		frappe.db.after_rollback.add(fn)
		return
	frappe.local.rollback_observers.append(_RollbackObserver(fn))


def _once(fn: Callable[[], Any]) -> Callable[[], Any]:
	def run() -> None:
		if not run.spine_done:
			run.spine_done = True
			fn()

	run.spine_done = False
	return run


class _RollbackObserver:
	"""v14 calls ``on_rollback()`` on each object in ``frappe.local.rollback_observers``."""

	def __init__(self, fn: Callable[[], Any]):
		self.on_rollback = fn
