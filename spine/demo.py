"""Example consumer and producer handlers: a starting point for your own, and what Spine's tests use.

Consumer handlers take the message as decoded JSON (``{"Header": {...}, "Payload": {...}}``)
and must not commit: Spine commits their effects together with the Message Log status.
Producer handlers take ``(doc, event)`` and return the document to publish or None.
"""

from __future__ import annotations

import time
from typing import Any

import frappe

from spine import compat

__all__ = [
	"CALLS_KEY",
	"TRACES_KEY",
	"add_comment",
	"add_comment_row",
	"add_comment_then_hold",
	"add_marker",
	"add_note",
	"always_raise",
	"answer",
	"ask_many",
	"comment_batch",
	"commit_then_comment",
	"drop_closed",
	"fail_marked",
	"fail_until",
	"noop",
	"noop_batch",
	"record_call",
	"record_trace",
	"rollback_then_comment",
]

CALLS_KEY = "spine:demo:calls"
TRACES_KEY = "spine:demo:traces"


def noop(message: dict[str, Any]) -> None:
	"""Accept every message and do nothing (useful to measure Spine itself)."""


def record_call(message: dict[str, Any]) -> None:
	"""Append ``<message id> <unix time>`` to a Redis list, so a test can see calls and their order.

	Messages of the original Spine Adapter carry no message id; the document name stands in.
	"""
	header = message["Header"]
	ident = header.get("MessageId") or header.get("DocName") or message["Payload"].get("name")
	compat.cache().rpush(CALLS_KEY, f"{ident} {time.time():.6f}")


def record_trace(message: dict[str, Any]) -> None:
	"""Append ``<message id> <Header.TraceParent>`` to a Redis list (``TRACES_KEY``)."""
	header = message["Header"]
	compat.cache().rpush(TRACES_KEY, f"{header.get('MessageId')} {header.get('TraceParent')}")


def fail_marked(message: dict[str, Any]) -> None:
	"""Raise for a document whose description starts with FAIL; record the call otherwise."""
	if str(message["Payload"].get("description") or "").startswith("FAIL"):
		raise RuntimeError("demo failure: the document is marked FAIL")
	record_call(message)


def fail_until(message: dict[str, Any]) -> None:
	"""Raise until this message was tried ``Payload["fail_times"]`` times, then record the call."""
	header = message["Header"]
	key = compat.cache().make_key(f"spine:demo:tries:{header.get('MessageId')}")
	tries = compat.cache().incr(key)
	compat.cache().expire(key, 3600)
	if tries <= int(message["Payload"].get("fail_times", 0)):
		raise RuntimeError(f"demo failure {tries} of {message['Payload'].get('fail_times')}")
	record_call(message)


def add_comment(message: dict[str, Any]) -> None:
	"""Write a Comment naming the message id (a database effect), then fail if the payload says so."""
	header = message["Header"]
	frappe.get_doc(
		{
			"doctype": "Comment",
			"comment_type": "Info",
			"reference_doctype": "ToDo",
			"content": f"spine-demo {header.get('MessageId')}",
		}
	).insert(ignore_permissions=True)
	if message["Payload"].get("fail_after_write"):
		raise RuntimeError("demo failure after writing")


def add_comment_then_hold(message: dict[str, Any]) -> None:
	"""``add_comment``, then, the first time a message with ``Payload["hold"]`` (seconds) is handled,
	say so in Redis (``holding <message id>`` on ``CALLS_KEY``) and wait that long before returning:
	a test kills the worker while the handler's uncommitted effect is held."""
	add_comment(message)
	seconds = message["Payload"].get("hold")
	if not seconds:
		return
	header = message["Header"]
	key = compat.cache().make_key(f"spine:demo:held:{header.get('MessageId')}")
	if compat.cache().incr(key) == 1:
		compat.cache().expire(key, 3600)
		compat.cache().rpush(CALLS_KEY, f"holding {header.get('MessageId')}")
		time.sleep(float(seconds))


def add_comment_row(message: dict[str, Any]) -> None:
	"""``add_comment`` in one INSERT, without Frappe's document machinery: a database effect cheap
	enough that a test measures Spine, not Frappe's insert."""
	from frappe.utils import now_datetime

	now = now_datetime()
	frappe.db.sql(
		"""INSERT INTO `tabComment` (name, creation, modified, owner, modified_by, comment_type,
		reference_doctype, content) VALUES (%s, %s, %s, 'Administrator', 'Administrator', 'Info', 'ToDo', %s)""",
		(frappe.generate_hash(length=20), now, now, f"spine-demo {message['Header'].get('MessageId')}"),
	)


def add_note(message: dict[str, Any]) -> None:
	"""Insert a Note titled ``Payload["title"]``: a handler whose effect is a document this site may
	publish in turn (routed by this site's Spine Producer Config as any save is)."""
	frappe.get_doc({"doctype": "Note", "title": message["Payload"]["title"], "public": 1}).insert(
		ignore_permissions=True
	)


def commit_then_comment(message: dict[str, Any]) -> None:
	"""A handler breaking the rule: commits by itself, then writes a Comment (Spine must notice)."""
	frappe.db.commit()  # nosemgrep: frappe-manual-commit - demonstrates what Spine detects
	add_comment(message)


def rollback_then_comment(message: dict[str, Any]) -> None:
	"""A handler breaking the rule the other way: rolls back by itself, then writes a Comment."""
	frappe.db.rollback()
	add_comment(message)


def noop_batch(messages: list[dict[str, Any]]) -> None:
	"""Batch handler that accepts every message and does nothing (to measure Spine itself)."""


def comment_batch(messages: list[dict[str, Any]]) -> None:
	"""Batch handler: one Comment per message, then fail the whole call if any payload says ``poison``.

	Records each call's message ids in Redis (``CALLS_KEY``, one entry per call) so a test can
	see how Spine split a failing batch.
	"""
	compat.cache().rpush(CALLS_KEY, "batch " + ",".join(m["Header"].get("MessageId") or "" for m in messages))
	for message in messages:
		add_comment({**message, "Payload": {**message["Payload"], "fail_after_write": 0}})
	if any(m["Payload"].get("poison") for m in messages):
		raise RuntimeError("demo batch failure: a poison message is in this batch")


def answer(message: dict[str, Any]) -> dict[str, Any]:
	"""Responder: echo the request's payload with this site's name. ``fail`` in the payload raises,
	``sleep`` (seconds) answers late."""
	payload = message["Payload"]
	if payload.get("sleep"):
		time.sleep(float(payload["sleep"]))
	if payload.get("fail"):
		raise ValueError(f"demo responder refuses: {payload['fail']}")
	return {"echo": payload, "site": frappe.local.site}


def ask_many(topic: str, count: int, tag: str) -> list[list]:
	"""Caller for tests: ``count`` requests one after another; returns [sent id, answered id, site]."""
	import spine

	results = []
	for i in range(int(count)):
		sent = f"{tag}-{i}"
		reply = spine.request(topic, {"id": sent}, timeout=30)
		results.append([sent, reply["echo"]["id"], reply["site"]])
	frappe.db.commit()  # nosemgrep: frappe-manual-commit - a bench execute caller keeps its request records
	return results


def drop_closed(doc, event: str):
	"""Producer handler: publish ToDos unless they are Closed."""
	return None if doc.get("status") == "Closed" else doc


def add_marker(doc, event: str) -> dict[str, Any]:
	"""Producer handler: publish the document with an extra key."""
	data = doc.as_dict()
	data["spine_marker"] = f"{event}:{doc.name}"
	return data


def always_raise(doc, event: str):
	"""Producer handler that always fails: Spine logs it and publishes the original document."""
	raise RuntimeError(f"demo producer handler failure for {doc.name}")
