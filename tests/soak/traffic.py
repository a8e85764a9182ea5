"""The soak's traffic: what users of one site do while everything else happens, written down.

Each ``Traffic`` thread works on one site with a Frappe context and database connection of its own
and a seeded sequence of transactions: single-commit saves of ToDos (published to the other site,
whose handler writes one Comment per message), bulk transactions, transactions rolled back (their
events must never be published), Notes (routed by the config saves the chaos makes), masters
inserted, changed, renamed and deleted and invoices submitted, cancelled and amended (synced to the
other site by Spine Sync Rules). A ``Requester`` thread asks the other site with ``spine.request``.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections.abc import Callable

from tests.soak.journal import Journal, RequestRun, Txn

MASTER, INVOICE = "Spine Sync Master", "Spine Sync Invoice"
VERSION_SQL = "SELECT value FROM `tabSingles` WHERE doctype = 'Spine Producer Config' AND field = 'modified'"


def producer_version() -> str | None:
	"""Spine Producer Config's ``modified`` as this transaction sees it: the version the capture hook
	routes by (``spine.settings.config_cache``)."""
	import frappe

	found = frappe.db.sql(VERSION_SQL)
	return found[0][0] if found else None


class SiteThread(threading.Thread):
	"""A thread with a Frappe context of its own on ``site``; an exception ends it and is kept in
	``error`` (``check()`` raises it), so a helper thread never fails silently."""

	def __init__(self, site: str, sites_path: str, spared: set[int], name: str):
		super().__init__(name=name, daemon=True)
		self.site, self.sites_path, self.spared = site, sites_path, spared
		self.error: str | None = None

	def run(self) -> None:
		import frappe

		try:
			frappe.init(site=self.site, sites_path=self.sites_path)
			frappe.connect()
			frappe.set_user("Administrator")
			self.spared.add(frappe.db.sql("SELECT CONNECTION_ID()")[0][0])  # the connection killer spares it
			self.work()
		except BaseException:
			self.error = traceback.format_exc()
		finally:
			try:
				frappe.destroy()
			except Exception:
				pass

	def work(self) -> None:
		raise NotImplementedError

	def check(self) -> None:
		if self.error:
			raise AssertionError(f"{self.name} failed:\n{self.error}")


class Traffic(SiteThread):
	"""Transactions on one site until ``stop`` is set, about ``per_second`` of them a second."""

	def __init__(
		self,
		tag: str,
		site: str,
		sites_path: str,
		journal: Journal,
		seed: int,
		stop: threading.Event,
		spared: set[int],
		per_second: float = 4.0,
		prefix: str = "soak",
	):
		super().__init__(site, sites_path, spared, name=f"traffic-{tag}")
		self.tag, self.journal, self.stop, self.per_second = tag, journal, stop, per_second
		self.prefix = f"{prefix}-{tag}"  # the run's own: a seed run again makes other names
		self.rng = random.Random(seed)
		self.todos: list[str] = []
		self.masters: list[str] = []  # may be renamed or deleted
		self.stable_masters: list[str] = []  # what invoices link to: never renamed or deleted
		self.invoices: list[tuple[str, int]] = []  # (name, docstatus)
		self.made = 0

	def work(self) -> None:
		actions: list[tuple[float, Callable[[list], None]]] = [
			(40, self.todo_insert),
			(25, self.todo_update),
			(4, self.todo_delete),
			(6, self.bulk),
			(5, self.rolled_back),
			(6, self.note_insert),
			(4, self.master_insert),
			(3, self.master_update),
			(2, self.master_rename),
			(1, self.master_delete),
			(4, self.invoice_flow),
		]
		weights = [w for w, _ in actions]
		while not self.stop.is_set():
			started = time.monotonic()
			(action,) = self.rng.choices([a for _, a in actions], weights)
			self.transaction(action)
			time.sleep(max(0.0, 1 / self.per_second - (time.monotonic() - started)))

	def transaction(self, action: Callable[[list], None], rollback: bool = False) -> None:
		"""Run ``action`` in a transaction of its own and write it down: committed, rolled back (by
		design or because the action failed), or unknown (the commit itself failed)."""
		import frappe
		from frappe.utils import now_datetime

		ops: list[tuple[str, str, str]] = []
		frappe.db.rollback()
		try:
			action(ops)
			version = producer_version()
		except Exception as e:
			frappe.db.rollback()
			self.forget(ops)
			self.journal.add(
				Txn(self.tag, ops, None, False, now_datetime(), f"{type(e).__name__}: {e}"[:300])
			)
			return
		if rollback or getattr(action, "rolls_back", False):
			frappe.db.rollback()
			self.forget(ops)
			self.journal.add(Txn(self.tag, ops, version, False, now_datetime()))
			return
		error = ""
		try:
			frappe.db.commit()
			committed: bool | None = True
		except Exception as e:
			committed = None  # the commit's outcome is not known: the end check leaves these out
			error = f"commit: {type(e).__name__}: {e}"[:300]
			frappe.db.rollback()
		self.journal.add(Txn(self.tag, ops, version, committed, now_datetime(), error))

	def forget(self, ops: list[tuple[str, str, str]]) -> None:
		"""Documents made in a transaction that did not commit do not exist."""
		made = {name for op, _, name in ops if op == "insert"}
		self.todos = [n for n in self.todos if n not in made]
		self.masters = [n for n in self.masters if n not in made]
		self.stable_masters = [n for n in self.stable_masters if n not in made]
		self.invoices = [i for i in self.invoices if i[0] not in made]

	def new_name(self, what: str) -> str:
		self.made += 1
		return f"{self.prefix}-{what}-{self.made:06d}-{self.rng.randrange(1 << 20):05x}"

	# --- ToDos: published to the other site, one Comment per message there
	def todo_insert(self, ops: list) -> None:
		import frappe

		doc = frappe.get_doc({"doctype": "ToDo", "description": self.new_name("todo")}).insert()
		ops.append(("insert", "ToDo", doc.name))
		self.todos.append(doc.name)

	def todo_update(self, ops: list) -> None:
		import frappe

		if not self.todos:
			return self.todo_insert(ops)
		name = self.rng.choice(self.todos[-200:])
		doc = frappe.get_doc("ToDo", name)
		doc.description = self.new_name("todo-update")
		doc.save()
		ops.append(("save", "ToDo", name))

	def todo_delete(self, ops: list) -> None:
		import frappe

		if len(self.todos) < 20:
			return self.todo_insert(ops)
		name = self.todos.pop(self.rng.randrange(len(self.todos) - 10))  # not one of the latest
		frappe.delete_doc("ToDo", name)
		ops.append(("delete", "ToDo", name))

	def bulk(self, ops: list) -> None:
		for _ in range(self.rng.randint(50, 200)):
			(self.todo_insert if self.rng.random() < 0.6 else self.todo_update)(ops)

	def rolled_back(self, ops: list) -> None:
		for _ in range(self.rng.randint(1, 5)):
			self.todo_insert(ops)

	rolled_back.rolls_back = True  # type: ignore[attr-defined]

	# --- Notes: routed wherever the chaos's latest Spine Producer Config save says
	def note_insert(self, ops: list) -> None:
		import frappe

		doc = frappe.get_doc({"doctype": "Note", "title": self.new_name("note"), "public": 1}).insert()
		ops.append(("insert", "Note", doc.name))

	# --- synced documents: masters (insert, update, rename, delete) and invoices (submit, cancel, amend)
	def master_insert(self, ops: list) -> None:
		import frappe

		name = self.new_name("master")
		frappe.get_doc(
			{"doctype": MASTER, "__newname": name, "code": name, "title": "new", "price": 1}
		).insert()
		ops.append(("insert", MASTER, name))
		(self.stable_masters if len(self.stable_masters) < 5 else self.masters).append(name)

	def master_update(self, ops: list) -> None:
		import frappe

		if not self.masters:
			return self.master_insert(ops)
		name = self.rng.choice(self.masters)
		doc = frappe.get_doc(MASTER, name)
		doc.title, doc.price = self.new_name("title"), round(self.rng.uniform(1, 1000), 2)
		doc.save()
		ops.append(("save", MASTER, name))

	def master_rename(self, ops: list) -> None:
		import frappe

		if not self.masters:
			return self.master_insert(ops)
		old = self.masters.pop(self.rng.randrange(len(self.masters)))
		new = self.new_name("renamed")
		frappe.rename_doc(MASTER, old, new, force=True)
		ops.append(("rename", MASTER, new))
		self.masters.append(new)

	def master_delete(self, ops: list) -> None:
		import frappe

		if not self.masters:
			return self.master_insert(ops)
		name = self.masters.pop(self.rng.randrange(len(self.masters)))
		frappe.delete_doc(MASTER, name)
		ops.append(("delete", MASTER, name))

	def invoice_flow(self, ops: list) -> None:
		"""A new invoice submitted, a submitted one cancelled, or a cancelled one amended (and submitted)."""
		import frappe

		if not self.stable_masters:
			return self.master_insert(ops)
		submitted = [i for i in self.invoices if i[1] == 1]
		cancelled = [i for i in self.invoices if i[1] == 2]
		roll = self.rng.random()
		if submitted and roll < 0.3:
			name = self.rng.choice(submitted)[0]
			frappe.get_doc(INVOICE, name).cancel()
			ops.append(("cancel", INVOICE, name))
			self.invoices = [(n, 2 if n == name else s) for n, s in self.invoices]
			return
		if cancelled and roll < 0.5:
			old = self.rng.choice(cancelled)[0]
			amended = frappe.copy_doc(frappe.get_doc(INVOICE, old))
			amended.amended_from = old
			amended.set("__newname", self.new_name("amended"))
			amended.insert()
			amended.submit()
			ops += [("insert", INVOICE, amended.name), ("submit", INVOICE, amended.name)]
			self.invoices = [i for i in self.invoices if i[0] != old] + [(amended.name, 1)]
			return
		name = self.new_name("invoice")
		inv = frappe.get_doc({
			"doctype": INVOICE, "__newname": name, "customer": self.tag,
			"items": [{"master": self.rng.choice(self.stable_masters), "qty": self.rng.randint(1, 9)}],
		}).insert()  # fmt: skip
		ops.append(("insert", INVOICE, name))
		if self.rng.random() < 0.8:
			inv.submit()
			ops.append(("submit", INVOICE, name))
		self.invoices.append((name, inv.docstatus))


class Requester(SiteThread):
	"""``spine.request`` to the other site's responder, one after another, until ``stop`` is set."""

	def __init__(
		self,
		tag: str,
		site: str,
		sites_path: str,
		topic: str,
		journal: Journal,
		stop: threading.Event,
		spared: set[int],
		pause: float = 1.0,
	):
		super().__init__(site, sites_path, spared, name=f"requests-{tag}")
		self.tag, self.topic, self.journal, self.stop, self.pause = tag, topic, journal, stop, pause

	def work(self) -> None:
		import frappe
		from frappe.utils import now_datetime

		import spine

		n = 0
		while not self.stop.is_set():
			n += 1
			request_id = f"soak-{self.tag}-ask-{n}"
			started, at = time.monotonic(), now_datetime()
			try:
				reply = spine.request(self.topic, {"id": request_id}, timeout=10)
				outcome = "reply" if (reply.get("echo") or {}).get("id") == request_id else "wrong reply"
			except spine.RequestTimeout:
				outcome = "timeout"
			except spine.RemoteError:
				outcome = "remote error"
			except Exception:
				outcome = "error: " + traceback.format_exc(limit=2).strip().splitlines()[-1]
			try:
				frappe.db.commit()
			except Exception:
				frappe.db.rollback()
			self.journal.add(RequestRun(self.tag, request_id, at, outcome, time.monotonic() - started))
			self.stop.wait(self.pause)
