"""Apply a received document message to the local document, as a Spine Sync Rule says.

``plan`` decides without writing (what preview shows): find the local document, map fields, child
tables and links, and choose the action. ``apply`` carries it out inside the processor's
transaction, records the Spine Document Map entry and wakes messages waiting for this document.

Outcomes the processor acts on: ``SyncSkipped`` (nothing to do, with the reason), ``SyncWaiting``
(a linked document is not here yet: retried when it arrives), ``SyncFailed`` (Frappe refused the
document, e.g. a mandatory field: not retried until the rule or data is fixed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import frappe

from spine import message_log
from spine.errors import SpineError
from spine.schema import TABLES
from spine.sync import compare, document_map, mapping
from spine.sync.outcomes import SyncFailed, SyncSkipped, SyncWaiting
from spine.sync.rules import split

_UPSERT = frozenset({"after_insert", "on_update", "on_update_after_submit"})


@dataclass
class Plan:
	action: str  # create, update, submit, cancel, delete, rename, drop (a stale copy of a renamed one)
	local_doctype: str
	local_name: str | None
	remote_name: str
	origin: str
	values: dict[str, Any] = field(default_factory=dict)
	tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
	ignore_links: bool = False
	new_name: str | None = None  # rename
	map_entry: str | None = None  # this document's Spine Document Map entry, when it has one
	changes: list[tuple[str, Any, Any]] = field(default_factory=list)
	renamed_from: str | None = None  # a rename: the source's old name, remembered as renamed

	def summary(self) -> str:
		target = f"{self.local_doctype} {self.local_name or '(new)'}"
		if self.action == "unchanged":
			return f"sync: {target} is already as the message says; nothing saved"
		return f"sync: {self.action} {target}" + (
			f" ({len(self.changes)} field changes)" if self.changes else ""
		)


def apply(
	message: dict[str, Any],
	rule: dict[str, Any],
	message_id: str | None = None,
	woken: set[str] | None = None,
) -> str:
	"""Carry out what ``rule`` says for ``message``; returns one line for the attempt history.

	Messages waiting for the applied document are made due: now, or, when the caller collects them in
	``woken``, by the caller's ``wake(woken)`` before its commit (one UPDATE for a whole batch)."""
	plan = make_plan(message, rule)
	try:
		local = _execute(plan, message, rule)
	except SpineError:
		raise
	except frappe.ValidationError as e:
		if isinstance(e, frappe.UniqueValidationError) and (held := _held_by_a_synced_document(plan)):
			raise SyncWaiting(f"{plan.local_doctype}:{held[0]}", held[1]) from None
		raise SyncFailed(
			f"{plan.local_doctype} {plan.local_name or '(new)'} was refused: {frappe.utils.strip_html(str(e))}. "
			f"Mapped values: {json.dumps(plan.values, default=str)[:1500]}"
		) from None
	# woken too: messages waiting because a document held a unique value that is freed now
	names = {plan.local_name}
	if plan.action == "delete":
		document_map.forget(plan.origin, plan.local_doctype, plan.remote_name)
	elif plan.action != "drop":  # a drop: the document is here under its new name, with its own entry
		remote = plan.new_name or plan.remote_name
		document_map.remember(plan.origin, plan.local_doctype, remote, local,
			(message.get("Payload") or {}).get("modified"), message_id, rule.get("name"), plan.map_entry)  # fmt: skip
		names |= {remote, local}
	keys = {f"{plan.local_doctype}:{n}" for n in names if n}
	if woken is None:
		wake(keys)
	else:
		woken.update(keys)
	if plan.renamed_from:
		document_map.remember_rename(plan.origin, plan.local_doctype, plan.renamed_from,
			plan.new_name or plan.remote_name, (message.get("Header") or {}).get("Timestamp"), message_id,
			rule.get("name"))  # fmt: skip
	frappe.flags.spine_synced_docs = None
	return plan.summary()


def make_plan(message: dict[str, Any], rule: dict[str, Any]) -> Plan:
	"""What applying ``message`` would do; raises ``SyncSkipped`` or ``SyncWaiting``. Writes nothing."""
	header, payload = message.get("Header") or {}, message.get("Payload") or {}
	event = header.get("Event")
	origin = header.get("OriginSite") or header.get("Origin") or "unknown"
	remote = header.get("DocName") or payload.get("name")
	local_doctype = rule.get("local_doctype") or rule["source_doctype"]
	if not remote:
		raise SyncSkipped("the message names no document (no Header.DocName or Payload.name)")
	meta = frappe.get_meta(local_doctype)
	entry = document_map.get(origin, local_doctype, remote)
	renamed_away = None
	if entry is not None and entry.renamed_to and event != "after_rename":
		if str(header.get("Timestamp") or "") <= str(entry.renamed_at or ""):
			raise SyncSkipped(
				f"the source renamed {remote} to {entry.renamed_to} after this message: it is about the "
				f"document now named {entry.renamed_to}, and older"
			)
		renamed_away, entry = entry, None  # a document made at the source under the old name since: a new one
	_skip_if_not_newer(entry, payload, message, rule)

	renamed_from = None
	if event == "after_rename":
		plan = _rename_plan(payload, rule, origin, remote, local_doctype, entry)
		if plan is not None:
			if plan.action == "rename":  # the renamed document also takes the state the message carries
				plan.values, plan.tables, plan.ignore_links = mapping.mapped(payload, rule, meta, origin)
			return plan
		# the old name is not here (its earlier messages travel under another key and may come later):
		# the rename brings the document under its new name, and the old name is remembered as renamed
		renamed_from = (payload.get("rename_meta") or {}).get("old_name")
	values, tables, ignore_flag = mapping.mapped(payload, rule, meta, origin)
	local = _find_local(rule, origin, remote, local_doctype, values, entry)
	base = {"local_doctype": local_doctype, "local_name": local, "remote_name": remote, "origin": origin,
		"map_entry": entry.name if entry else (renamed_away.name if renamed_away else None),
		"renamed_from": renamed_from}  # fmt: skip
	if event == "on_trash":
		if rule.get("on_delete") != "Delete here":
			raise SyncSkipped("the source was deleted; the rule says to keep the document here")
		if not local:
			raise SyncSkipped(f"the source was deleted; {local_doctype} {remote} is not here")
		return Plan("delete", **base)
	if event == "on_cancel":
		if not rule.get("follow_submit"):
			raise SyncSkipped("the source was cancelled; the rule does not follow submit and cancel")
		if not local or frappe.db.get_value(local_doctype, local, "docstatus") != 1:
			raise SyncSkipped(
				f"the source was cancelled; {local_doctype} {local or remote} is not submitted here"
			)
		return Plan("cancel", **base)
	if event not in _UPSERT and event not in ("on_submit", "after_rename"):
		raise SyncSkipped(f"event {event!r} is not one a sync rule applies")
	if not local and not rule.get("create_missing"):
		raise SyncSkipped(
			f"{local_doctype} {remote} is not here and the rule only updates existing documents"
		)
	if payload.get("amended_from"):
		source = payload["amended_from"]
		amends = document_map.local_name(origin, local_doctype, source) or source
		if not mapping.exists(local_doctype, amends):
			# its original travels under its own Kafka key and may come later (found by the soak)
			raise SyncWaiting(
				f"{local_doctype}:{amends}",
				f"waiting for {local_doctype} {amends}, which this document amends: it is not on this site yet",
			)
		values["amended_from"] = amends
	action = "create" if not local else "update"
	if event == "on_submit" and rule.get("follow_submit"):
		action = "submit"
	plan = Plan(action, values=values, tables=tables, ignore_links=ignore_flag, **base)
	if local:
		current = compare.current(meta, local, plan.tables)
		if current.docstatus == 1:  # submitted here: only what may change after submit
			plan.values = {
				k: v for k, v in values.items() if (df := meta.get_field(k)) and df.allow_on_submit
			}
			plan.tables = {}
			plan.action = "update"
		elif current.docstatus == 2:
			raise SyncSkipped(f"{local_doctype} {local} is cancelled here; changes no longer apply")
		plan.changes = [
			(k, current.get(k), v) for k, v in plan.values.items() if not compare.same(current.get(k), v)
		]
		plan.changes += [(t, f"{len(current.get(t) or [])} rows", f"{len(rows)} rows")
			for t, rows in plan.tables.items() if not compare.same_rows(current.get(t) or [], rows)]  # fmt: skip
		if plan.action == "update" and not plan.changes:
			plan.action = "unchanged"  # nothing saved: no new version, no modified bump, no hooks
	else:
		plan.changes = [(k, None, v) for k, v in values.items() if v not in (None, "")]
	return plan


def preview(rule: dict[str, Any], message_log: int) -> dict[str, Any]:
	"""What ``rule`` would do with a stored Message Log entry: action, target, field changes, or why not."""
	row = frappe.db.get_value("Message Log", message_log, ["message", "topic", "document_type"], as_dict=True)
	if not row:
		frappe.throw(f"Message Log {message_log} does not exist")
	message = json.loads(row.message)
	try:
		plan = make_plan(message, rule)
	except SyncSkipped as e:
		return {"action": "skip", "reason": e.reason}
	except SyncWaiting as e:
		return {"action": "wait", "reason": str(e), "waiting_for": e.waiting_for}
	return {
		"action": plan.action,
		"local_doctype": plan.local_doctype,
		"local_name": plan.local_name,
		"changes": [[k, compare.shown(old), compare.shown(new)] for k, old, new in plan.changes],
		"tables": {k: len(v) for k, v in plan.tables.items()},
	}


def _skip_if_not_newer(entry, payload: dict[str, Any], message: dict[str, Any], rule: dict[str, Any]) -> None:
	if not entry or not rule.get("skip_older"):
		return
	message_id = (message.get("Header") or {}).get("MessageId")
	if message_id and message_id == entry.last_message_id:
		raise SyncSkipped(f"message {message_id} was applied already (a redelivery or replay)")
	applied, incoming = entry.source_modified, payload.get("modified")
	if applied and incoming and str(incoming) < str(applied):
		raise SyncSkipped(
			f"older than what was applied: source modified {incoming} < {applied} already applied here"
		)


def _rename_plan(payload, rule, origin: str, remote: str, local_doctype: str, entry) -> Plan | None:
	"""The rename of the local copy of the source's old name to its new one; None when the old name is
	not here (the caller applies the message as the document under its new name)."""
	meta = payload.get("rename_meta") or {}
	old, new = meta.get("old_name"), meta.get("new_name") or remote
	if not old:
		raise SyncSkipped("a rename message without rename_meta.old_name")
	old_entry = document_map.get(origin, local_doctype, old)
	if old_entry is not None and old_entry.renamed_to:
		old_entry = None  # renamed already (a redelivery, or an earlier rename of that name)
	same_name = rule.get("find_by") == "Same name"
	local = (old_entry.local_name if old_entry and not same_name else None) or (
		old if mapping.exists(local_doctype, old) else None
	)
	if not local:
		return None
	# the entry of the old name moves to the new one (unless the new name has one already)
	moved = entry or old_entry
	if same_name and new != local and mapping.exists(local_doctype, new):
		if not old_entry:
			raise SyncSkipped(
				f"the source renamed {old} to {new}; both are here and {local_doctype} {old} was not made by "
				"this rule, so it is left alone"
			)
		# a later message of the new name came first and made it: the old copy is stale
		plan = Plan("drop", local_doctype, local, old, origin, new_name=new, renamed_from=old)
		plan.changes = [("name", local, f"(removed: {new} is here already)")]
		return plan
	plan = Plan("rename", local_doctype, local, old, origin, new_name=new,
		map_entry=moved.name if moved else None, renamed_from=old)  # fmt: skip
	plan.changes = [("name", local, new if same_name else local)]
	return plan


def _held_by_a_synced_document(plan: Plan) -> tuple[str, str] | None:
	"""A new document refused for a unique value: when a document here made from the same origin holds
	that value, ``(its name, why to wait for it)``, else None. It may be this very document under an
	earlier name (renamed twice at the source, the second rename travels under another Kafka key than
	the first and can come first): the first rename, when it arrives, frees the value."""
	if plan.local_name or plan.action not in ("create", "submit"):
		return None
	meta = frappe.get_meta(plan.local_doctype)
	for df in meta.fields:
		value = plan.values.get(df.fieldname)
		if not df.unique or value in (None, ""):
			continue
		holder = frappe.db.get_value(plan.local_doctype, {df.fieldname: value}, "name")
		if holder and document_map.remote_name(plan.origin, plan.local_doctype, holder):
			return holder, (
				f"waiting for {plan.local_doctype} {holder}, which holds {df.label or df.fieldname} {value!r} "
				f"here and came from {plan.origin} too: it may be {plan.remote_name} under an earlier name, "
				"whose rename has not arrived yet (each rename travels under its new name's Kafka key); "
				"Failed if it still holds it after the last attempt"
			)
	return None


def _find_local(
	rule, origin: str, remote: str, local_doctype: str, values: dict[str, Any], entry
) -> str | None:
	if entry and mapping.exists(local_doctype, entry.local_name):
		return entry.local_name
	by = rule.get("find_by") or "Same name"
	if by == "Same name":
		return remote if mapping.exists(local_doctype, remote) else None
	if by == "Match fields":
		keys = split(rule.get("match_fields"))
		if any(values.get(k) in (None, "") for k in keys):
			raise SyncSkipped(
				f"the message has no value for match field(s) {', '.join(k for k in keys if not values.get(k))}"
			)
		return frappe.db.get_value(local_doctype, {k: values[k] for k in keys})
	return None  # Document Map: a document not in the map is new here


def _execute(plan: Plan, message: dict[str, Any], rule: dict[str, Any]) -> str:
	"""Write the plan; returns the local document's name."""
	doctype = plan.local_doctype
	if plan.action in ("delete", "drop"):
		_mark_synced(doctype, plan.local_name)
		frappe.delete_doc(doctype, plan.local_name, ignore_permissions=True)
		return plan.local_name
	if plan.action == "cancel":
		doc = frappe.get_doc(doctype, plan.local_name)
		doc.flags.spine_synced = True
		doc.cancel()
		return doc.name
	if plan.action == "unchanged":
		return plan.local_name
	if plan.action == "rename":
		name = plan.local_name
		if rule.get("find_by") == "Same name" and plan.new_name != plan.local_name:
			_mark_synced(doctype, plan.local_name)
			_mark_synced(doctype, plan.new_name)
			name = frappe.rename_doc(
				doctype, plan.local_name, plan.new_name, show_alert=False, rebuild_search=False
			)
		_catch_up(doctype, name, plan)
		return name
	if plan.local_name:
		doc = frappe.get_doc(doctype, plan.local_name, for_update=True)
	else:
		doc = frappe.new_doc(doctype)
	doc.update(plan.values)
	for table, rows in plan.tables.items():
		doc.set(table, rows)  # rows replaced to match the source
	doc.flags.spine_synced = True  # capture: a change applied here is not published back
	doc.flags.ignore_links = plan.ignore_links
	doc.flags.ignore_permissions = True
	if plan.local_name:
		doc.save()
	else:
		doc.insert(set_name=_new_name(doc, plan, rule))
	if plan.action == "submit" and doc.docstatus == 0:
		doc.submit()
	return doc.name


def _catch_up(doctype: str, name: str, plan: Plan) -> None:
	"""After a rename: the document takes the values the rename's message carries (changes made at the
	source before the rename may have been skipped here, their messages coming after it)."""
	current = compare.current(frappe.get_meta(doctype), name, plan.tables)
	if current.docstatus != 0:
		return
	changed = any(not compare.same(current.get(k), v) for k, v in plan.values.items()) or any(
		not compare.same_rows(current.get(t) or [], rows) for t, rows in plan.tables.items()
	)
	if not changed:
		return
	doc = frappe.get_doc(doctype, name, for_update=True)
	doc.update(plan.values)
	for table, rows in plan.tables.items():
		doc.set(table, rows)
	doc.flags.spine_synced = True
	doc.flags.ignore_links = plan.ignore_links
	doc.flags.ignore_permissions = True
	doc.save()


def _new_name(doc, plan: Plan, rule: dict[str, Any]) -> str | None:
	"""The name of a document created here: the source's with Same name; else the local DocType's own
	naming, or, when it asks a person for the name (Prompt), the source's (suffixed if taken)."""
	if (rule.get("find_by") or "Same name") == "Same name":
		return plan.remote_name
	if (doc.meta.autoname or "").lower() not in ("", "prompt"):
		return None
	name, n = plan.remote_name, 1
	while frappe.db.exists(doc.doctype, name):
		n += 1
		name = f"{plan.remote_name}-{n}"
	return name


def _mark_synced(doctype: str, name: str) -> None:
	"""For operations whose hooks run on a document object Spine does not hold (rename, delete)."""
	if frappe.flags.spine_synced_docs is None:
		frappe.flags.spine_synced_docs = set()
	frappe.flags.spine_synced_docs.add((doctype, name))


def wake(keys: set[str]) -> None:
	"""Messages waiting for these documents (``DocType:name``) are due now, in this transaction."""
	message_log.wake(keys)
