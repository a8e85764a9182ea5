"""Keep several sites' Frappe state in one thread: one ``contextvars.Context`` per site.

``frappe.local`` lives in a context variable, so code run in a site's own context finds that
site's ``frappe.local`` (its database connection, its flags) as that site's last job left it,
and never another site's. A jsonworker serving many sites thus keeps one open connection per
site instead of reconnecting whenever the next job belongs to a different site.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any, TypeVar

import frappe

from spine import logs

log = logs.logger(__name__)

T = TypeVar("T")


class SiteContexts:
	"""``run(site, fn, ...)`` calls ``fn`` in ``site``'s own context (made on first use)."""

	def __init__(self) -> None:
		self._contexts: dict[str, contextvars.Context] = {}

	def run(self, site: str | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
		"""``fn(*args, **kwargs)`` in ``site``'s context; in the caller's when ``site`` is None."""
		if not site:
			return fn(*args, **kwargs)
		context = self._contexts.setdefault(site, contextvars.Context())
		return context.run(fn, *args, **kwargs)

	def close(self, site: str) -> None:
		"""Tear ``site``'s Frappe state down (its connection closed) and forget its context."""
		context = self._contexts.pop(site, None)
		if context is None:
			return
		try:
			context.run(_destroy)
		except Exception as e:
			log.debug("jsonworker: closing %s's connection failed: %s", site, e)

	def close_all(self) -> None:
		for site in list(self._contexts):
			self.close(site)


def _destroy() -> None:
	if getattr(frappe.local, "initialised", None):
		frappe.destroy()
