"""W3C trace context (``traceparent``) for Spine's messages. Plain Python.

Each captured event gets a span of its own in the trace of whatever saved it (the web request's
``traceparent`` header, or the message whose handler saved it), carried in ``Header.TraceParent``
and kept on the Message Log row on both sites, so one save can be followed across sites.
"""

from __future__ import annotations

import re
import secrets

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse(value: object) -> tuple[str, str, str] | None:
	"""(trace id, parent span id, flags) of a valid ``traceparent``, else None (W3C: all-zero ids
	and version ff are invalid)."""
	if not isinstance(value, str):
		return None
	found = _TRACEPARENT.match(value.strip().lower())
	if not found or found[1] == "ff" or set(found[2]) == {"0"} or set(found[3]) == {"0"}:
		return None
	return found[2], found[3], found[4]


def child(parent: object = None) -> str:
	"""A ``traceparent`` for a new span: in ``parent``'s trace if that is a valid one, else in a
	new trace (sampled)."""
	found = parse(parent)
	trace_id, flags = (found[0], found[2]) if found else (secrets.token_hex(16), "01")
	return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def trace_id(value: object) -> str | None:
	"""The trace id of a ``traceparent`` (what log lines and trace search use), or None."""
	found = parse(value)
	return found[0] if found else None
