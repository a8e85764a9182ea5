"""What the soak did, as its driver saw it: the ground truth the end check compares the databases and
the broker with.

Plain Python. Every traffic transaction is written down with the document events it caused, the
version of Spine Producer Config its own snapshot held (``Txn.version``), and whether it committed;
every config save with the version it made and the routes it set; every fault with when it began
and ended (wall clock, as Frappe stamps ``done_at``).
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import asdict, dataclass, field

# The document events Frappe runs for each operation (frappe.model.document: insert runs on_update,
# then after_insert; submit runs on_update, then on_submit), which Spine's capture hook sees.
EVENTS = {
	"insert": ("on_update", "after_insert"),
	"save": ("on_update",),
	"submit": ("on_update", "on_submit"),
	"cancel": ("on_cancel",),
	"rename": ("after_rename",),
	"delete": ("on_trash",),
}


@dataclass
class Txn:
	"""One traffic transaction of ``site`` ("a"/"b"): ``ops`` are (operation, DocType, name), the name
	after the operation (a rename's new name)."""

	site: str
	ops: list[tuple[str, str, str]]
	version: str | None
	committed: bool | None  # None: the commit raised, so whether it committed is not known
	at: datetime.datetime
	error: str = ""  # why it did not commit (an action that failed, a commit that raised)

	def events(self) -> list[tuple[str, str, str]]:
		"""(DocType, name, event) of every document event the transaction ran."""
		return [(doctype, name, event) for op, doctype, name in self.ops for event in EVENTS[op]]


@dataclass
class ConfigSave:
	"""A save of ``doctype`` on ``site``: ``version`` is Spine Producer Config's ``modified`` after it
	(producer saves), ``routes`` what it set: {DocType: [[topic, [config events]]]}."""

	site: str
	doctype: str
	at: datetime.datetime
	version: str | None = None
	routes: dict[str, list] = field(default_factory=dict)
	note: str = ""


@dataclass
class FaultRun:
	kind: str
	site: str
	started: datetime.datetime
	ended: datetime.datetime
	note: str = ""
	error: str = ""


@dataclass
class RequestRun:
	site: str
	request_id: str
	at: datetime.datetime
	outcome: str  # "reply", "timeout", "remote error", "wrong reply"
	seconds: float


class Journal:
	"""Thread-safe lists of what happened."""

	def __init__(self) -> None:
		self.lock = threading.Lock()
		self.txns: list[Txn] = []
		self.configs: list[ConfigSave] = []
		self.faults: list[FaultRun] = []
		self.requests: list[RequestRun] = []

	def add(self, item: Txn | ConfigSave | FaultRun | RequestRun) -> None:
		target = {
			Txn: self.txns,
			ConfigSave: self.configs,
			FaultRun: self.faults,
			RequestRun: self.requests,
		}[type(item)]
		with self.lock:
			target.append(item)

	def routes_at(self, site: str) -> dict[str | None, dict[str, list]]:
		"""{producer config version: routes} of ``site``, from its producer config saves."""
		return {
			c.version: c.routes
			for c in self.configs
			if c.site == site and c.doctype == "Spine Producer Config"
		}

	def as_dict(self) -> dict:
		with self.lock:
			return {
				"transactions": len(self.txns),
				"committed": sum(t.committed is True for t in self.txns),
				"commit outcome unknown": sum(t.committed is None for t in self.txns),
				"configs": [asdict(c) for c in self.configs],
				"faults": [asdict(f) for f in self.faults],
				"requests": len(self.requests),
				"not committed": [
					{"site": t.site, "at": t.at.isoformat(), "ops": t.ops[:5], "error": t.error}
					for t in self.txns
					if not t.committed and t.error
				][:100],
			}
