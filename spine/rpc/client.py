"""The caller's side of request/reply: ``spine.request`` and ``spine.request_all``.

A request is an envelope with ``CorrelationId`` (its message id), ``ReplyTo`` (this site's reply
topic) and ``Deadline``. It is published straight away through the process's long-lived producer,
confirmed by the broker (not through the outbox: a request lives only as long as its caller, and
the caller's transaction is none of its business), and recorded as a Published Outbound row in the
caller's transaction. The caller then waits on a Redis list that this site's eventdispatcher fills
the moment it reads a reply; nothing polls the database.
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import frappe
from frappe.utils import now_datetime

from spine import compat, envelope, logs, message_log, trace
from spine.config.topics import reply_topic
from spine.errors import RemoteError, RequestTimeout, SpineError
from spine.kafka.publisher import OutRecord, shared_publisher
from spine.producer import capture, own_key
from spine.rpc import REQUEST_DOCTYPE
from spine.settings import broker

log = logs.logger(__name__)

REPLY_KEY = "spine:reply:{}"  # the Redis list a caller waits on, one per correlation id


def request(topic: str, payload: dict, *, doctype: str = REQUEST_DOCTYPE, timeout: float = 10.0) -> dict:
	"""Publish ``payload`` as a request on ``topic`` and return the payload of the first reply.

	Raises ``RequestTimeout`` when no reply arrives within ``timeout`` seconds (no responder, or a
	slow one), and ``RemoteError`` (the responder's error type and message) when the responder raised.
	"""
	replies = _ask(topic, payload, doctype, timeout, mode="one", expect=1)
	if not replies:
		raise RequestTimeout(
			f"no reply to {doctype} on {topic} within {timeout:g}s: is a Spine Consumer Config row for "
			f"{topic} / {doctype} set up on the answering site, and are its processes running?"
		)
	first = replies[0]
	if "error" in first:
		raise RemoteError(
			first["error"].get("type", "Error"), first["error"].get("message", ""), first["site"]
		)
	return first["reply"]


def request_all(
	topic: str,
	payload: dict,
	*,
	expect: int | None = None,
	doctype: str = REQUEST_DOCTYPE,
	timeout: float = 10.0,
) -> list[dict[str, Any]]:
	"""Publish one request that several responders answer; return the replies that arrived within
	``timeout`` (or as soon as ``expect`` did): ``[{"site": ..., "reply": {...}}`` or
	``{"site": ..., "error": {"type", "message"}}]``, in the order they arrived."""
	return _ask(topic, payload, doctype, timeout, mode="all", expect=expect)


def _ask(
	topic: str, payload: dict, doctype: str, timeout: float, mode: str, expect: int | None
) -> list[dict]:
	site = frappe.local.site
	correlation = envelope.new_message_id()
	deadline = datetime.datetime.now().astimezone() + datetime.timedelta(seconds=timeout)
	settings = broker.site_settings()
	ensure_reply_topic()
	env = envelope.build(
		doctype=doctype, docname=correlation, event="request", topic=topic, payload=payload,
		origin=capture.origin(), origin_site=site, message_id=correlation,
		extra_header={"CorrelationId": correlation, "ReplyTo": reply_topic(site), "Deadline": deadline.isoformat(),
			"RequestMode": mode, "TraceParent": trace.child(capture.current_traceparent())},
	)  # fmt: skip
	own_key.sign_body(env.body)
	cache = compat.cache()
	key = cache.make_key(REPLY_KEY.format(correlation))
	started = time.monotonic()
	(delivery,) = shared_publisher(settings.producer).publish(
		[
			OutRecord(
				ref=correlation, topic=topic, key=env.key, value=envelope.encode(env), headers=env.headers()
			)
		]
	)
	if not delivery.ok:
		raise SpineError(f"the request could not be published on {topic}: {delivery.error}")
	broker.doorbell().ring([topic])  # responders of this bench resting between polls look at once
	replies: list[dict] = []
	try:
		while expect is None or len(replies) < expect:
			left = timeout - (time.monotonic() - started)
			if left <= 0:
				break
			item = cache.blpop([key], timeout=max(left, 0.01))
			if item is None:
				break
			replies.append(json.loads(item[1]))
	finally:
		cache.delete(key)  # replies still coming are recorded by the processor (late ones as Skipped)
		# recorded after the wait, not before: a row written first would hold its locks while the
		# caller waits, and a site answering its own request would wait on them
		_record(env, delivery)
	log.info(
		"request %s on %s: %d repl%s in %.0f ms", correlation, topic, len(replies), "y" if len(replies) == 1 else "ies",
		(time.monotonic() - started) * 1000,
	)  # fmt: skip
	return replies


def ensure_reply_topic() -> None:
	"""Create this site's reply topic before anyone answers on it."""
	broker.ensure_topic(
		reply_topic(frappe.local.site), "replies to this site's requests may be slow to arrive"
	)


def _record(env: envelope.Envelope, delivery) -> None:
	"""The request as a Published Outbound row of Message Log, in the caller's transaction."""
	# its CorrelationId is its own message id; already on the broker: Published as it is written
	message_log.insert_published(capture.row_values(env), delivery.partition, delivery.offset)
