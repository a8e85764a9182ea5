"""Replies on the caller's site: handed to the waiting caller as soon as they are read, then recorded.

``deliver`` runs in the eventdispatcher, before a batch goes to the jsonworkers: each reply is
pushed to the Redis list its caller waits on (the reply is in the caller's hands within
milliseconds of being read). ``handle`` is the processor's built-in handler for the reply rows:
Processed, or Skipped with the reason when the caller had already given up, so a late reply is
recorded, not lost silently.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Sequence
from typing import Any

import frappe

from spine import compat, logs, metrics
from spine.errors import SkipMessage
from spine.rpc.client import REPLY_KEY
from spine.settings import trusted_keys

log = logs.logger(__name__)
REPLY_TTL_SECONDS = 600


def deliver(records: Sequence[dict[str, Any]], reply_topic: str) -> int:
	"""Push the replies among ``records`` to their callers' Redis lists; returns how many. Never raises:
	the replies are recorded by the processor whatever happens here."""
	pushed = 0
	site = frappe.local.site
	try:
		cache = compat.cache()
		pipe = cache.pipeline()
		keyring, required = None, None
		for rec in records:
			if rec.get("topic") != reply_topic or rec.get("value_b64") or not rec.get("value"):
				continue
			try:
				body = json.loads(rec["value"])
				correlation = body["Header"]["CorrelationId"]
			except (ValueError, KeyError, TypeError):
				continue  # not a reply: the processor stores it as Invalid with the reason
			if required is None:
				required = bool(frappe.get_cached_doc("Spine Settings").get("require_signed_replies"))
			proven = None
			if required or '"Signature"' in rec["value"]:
				keyring = keyring or trusted_keys.keyring()
				verdict = keyring.judge(body)
				if trusted_keys.admit(verdict, required, [], "this site"):
					continue  # not for the caller: the processor stores it as Invalid or Skipped, saying why
				proven = verdict.site
			key = cache.make_key(REPLY_KEY.format(correlation))
			pipe.rpush(key, json.dumps(_for_caller(body, proven)))
			pipe.expire(key, REPLY_TTL_SECONDS)
			pushed += 1
			asked = _moment(body["Header"].get("RequestTimestamp"))
			if asked:
				metrics.observe("spine_request_to_reply_seconds", time.time() - asked.timestamp(), site=site)
		if pushed:
			pipe.execute()
			metrics.inc("spine_replies_received_total", pushed, site=site)
	except Exception:
		log.warning("could not hand replies to their callers; they are still recorded", exc_info=True)
	return pushed


def _for_caller(body: dict[str, Any], proven_site: str | None = None) -> dict[str, Any]:
	header, payload = body.get("Header") or {}, body.get("Payload") or {}
	answer: dict[str, Any] = {"site": proven_site or header.get("OriginSite") or header.get("Origin")}
	if "error" in payload:
		answer["error"] = payload["error"]
	else:
		answer["reply"] = payload.get("reply", {})
	return answer


def handle(message: dict[str, Any]) -> None:
	"""Built-in handler of this site's reply topic. A reply written after its request's deadline (its
	caller had given up by then) is stored as Skipped, saying so: recorded, not lost silently."""
	header = message.get("Header") or {}
	written, deadline = _moment(header.get("Timestamp")), _moment(header.get("RequestDeadline"))
	if written and deadline and written > deadline:
		raise SkipMessage(
			f"reply to request {header.get('CorrelationId')} was written at {header.get('Timestamp')}, after the "
			f"request's deadline {header.get('RequestDeadline')}: its caller had stopped waiting"
		)


def _moment(text: Any) -> datetime.datetime | None:
	try:
		moment = datetime.datetime.fromisoformat(str(text))
	except (TypeError, ValueError):
		return None
	return moment if moment.tzinfo else None
