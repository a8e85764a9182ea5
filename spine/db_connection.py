"""A long-running process's database connection: notice that it died, open a new one, say so once.

Connections die in production (a MariaDB restart or failover, a proxy timeout, an operator's
``KILL``). The transaction on a dead connection is gone: MariaDB rolled it back, so nothing of it
counts, and the work it was doing is done again on the new connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import frappe

from spine import logs

log = logs.logger(__name__)

T = TypeVar("T")

# MariaDB client/server error codes that mean "this connection is gone"
_LOST_CODES = {
	1053,  # server shutdown in progress
	1927,  # connection was killed
	2003,  # can't connect
	2006,  # server has gone away
	2013,  # lost connection during query
	2055,  # lost connection at reading / system error
	4031,  # disconnected for inactivity (wait_timeout)
}


def is_lost(error: BaseException) -> bool:
	"""Whether ``error`` (or what caused it) says the database connection is gone."""
	import pymysql

	seen = 0
	while error is not None and seen < 5:
		if isinstance(error, pymysql.err.InterfaceError):
			return True
		if isinstance(error, pymysql.err.OperationalError) and error.args and error.args[0] in _LOST_CODES:
			return True
		error = error.__cause__ or error.__context__
		seen += 1
	return False


def reconnect() -> None:
	"""Replace ``frappe.db``'s connection with a new one (raises if the server does not answer)."""
	try:
		frappe.db.close()
	except Exception:
		pass  # it is dead already
	# what the dead transaction registered to run at its commit or rollback never will
	for hooks in ("before_commit", "after_commit", "before_rollback", "after_rollback"):
		if hasattr(getattr(frappe.db, hooks, None), "reset"):
			getattr(frappe.db, hooks).reset()
	if hasattr(frappe.db, "transaction_writes"):
		frappe.db.transaction_writes = 0
	frappe.db.connect()


class Outage:
	"""Log lines an operator can act on while connections die: one warning when the connection is
	first lost, one line once it has worked again for ``settle_seconds`` (naming how many
	connections were lost meanwhile), however often it dies in between."""

	def __init__(self, what: str, settle_seconds: float = 10.0):
		self.what = what
		self.settle_seconds = settle_seconds
		self.since: float | None = None
		self.last_loss = 0.0
		self.losses = 0

	def lost(self, error: BaseException, next_step: str) -> None:
		self.losses += 1
		self.last_loss = time.monotonic()
		if self.since is None:
			self.since = self.last_loss
			log.warning(
				"%s on %s: the database connection was lost (%s); %s",
				self.what, getattr(frappe.local, "site", None), error, next_step,
			)  # fmt: skip

	def back(self) -> None:
		if self.since is None or time.monotonic() - self.last_loss < self.settle_seconds:
			return
		log.warning(
			"%s on %s: the database connection works again (%d lost between %.0fs and %.0fs ago)",
			self.what, getattr(frappe.local, "site", None), self.losses,
			time.monotonic() - self.since, time.monotonic() - self.last_loss,
		)  # fmt: skip
		self.since, self.losses = None, 0


def call(fn: Callable[[], T], outage: Outage, next_step: str = "reconnecting on next use") -> T:
	"""``fn()``; if the connection turns out dead, reconnect and call it once more.

	Raises what the second call raises (or the reconnect's error while the server is away); a
	failure that is not a lost connection is raised at once.
	"""
	try:
		result = fn()
	except Exception as e:
		if not is_lost(e):
			raise
		outage.lost(e, next_step)
		try:
			reconnect()
		except Exception as again:
			raise again from e
		result = fn()
	outage.back()
	return result
