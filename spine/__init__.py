"""Spine: Frappe sites connected through Kafka.

The public API is small and cheap to import (it never loads Frappe by itself):
``spine.request`` / ``spine.request_all`` (ask another site or service and wait for the answer)
and the errors they raise, ``spine.RequestTimeout`` and ``spine.RemoteError``.
"""

from typing import Any

from spine.errors import RemoteError, RequestTimeout

__version__ = "0.2.0"
__all__ = ["RemoteError", "RequestTimeout", "request", "request_all"]


def request(topic: str, payload: dict, *, doctype: str = "Spine Request", timeout: float = 10.0) -> dict:
	"""Publish a request on ``topic`` and return the first reply's payload (see spine.rpc.client)."""
	from spine.rpc.client import request as _request

	return _request(topic, payload, doctype=doctype, timeout=timeout)


def request_all(
	topic: str,
	payload: dict,
	*,
	expect: int | None = None,
	doctype: str = "Spine Request",
	timeout: float = 10.0,
) -> list[dict[str, Any]]:
	"""Publish one request and gather the replies of every responder (see spine.rpc.client)."""
	from spine.rpc.client import request_all as _request_all

	return _request_all(topic, payload, expect=expect, doctype=doctype, timeout=timeout)
