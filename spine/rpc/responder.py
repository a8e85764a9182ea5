"""The responder's side: an ordinary Spine Consumer Config row answers requests on its topic.

The processor asks ``expired`` before running the handlers (a request read after its deadline is
not handled, and recorded as Skipped), then writes the handler's return value with ``reply``, or an
error reply with ``reply_error`` when a handler raised. Replies go through the outbox in the same
transaction as the request's status, so a request delivered twice is answered once.
"""

from __future__ import annotations

import datetime
from typing import Any

from spine.producer import capture
from spine.rpc import REPLY_DOCTYPE


def is_request(message: dict[str, Any]) -> bool:
	header = message.get("Header") or {}
	return bool(header.get("ReplyTo") and header.get("CorrelationId"))


def expired(message: dict[str, Any]) -> str | None:
	"""Why the request is too late to answer, or None."""
	deadline = (message.get("Header") or {}).get("Deadline")
	try:
		moment = datetime.datetime.fromisoformat(str(deadline))
	except (TypeError, ValueError):
		return None
	now = datetime.datetime.now().astimezone()
	if moment.tzinfo and moment < now:
		return f"request read after its deadline ({deadline}; now {now.isoformat(timespec='milliseconds')}): not handled, nobody waits for the answer"
	return None


def reply(message: dict[str, Any], result: Any) -> None:
	"""Write the reply (the handler's return value, a dict) to the outbox of this transaction."""
	if result is not None and not isinstance(result, dict):
		result = {"value": result}
	_write(message, {"reply": result or {}})


def reply_error(message: dict[str, Any], error: BaseException) -> None:
	"""Write an error reply naming the responder's error type and message."""
	_write(message, {"error": {"type": type(error).__name__, "message": str(error)[:2000]}})


def _write(message: dict[str, Any], payload: dict[str, Any]) -> None:
	header = message["Header"]
	correlation = header["CorrelationId"]
	capture.capture_raw(
		REPLY_DOCTYPE, correlation, "reply", header["ReplyTo"], payload,
		extra_header={"CorrelationId": correlation, "InReplyTo": header.get("MessageId"),
			"RequestDeadline": header.get("Deadline"), "RequestTimestamp": header.get("Timestamp")},
	)  # fmt: skip
