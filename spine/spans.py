"""OpenTelemetry spans of Spine's stages (capture, publish, store, handle), when ``opentelemetry-api``
is installed and a tracer provider (an SDK) is set up in the process; without the API nothing is
imported and every call costs one flag check. Plain Python.

Spans follow the message's ``traceparent`` (``spine.trace``), so with an SDK configured in each
process the stages of one save form one trace across processes and sites.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_available: bool | None = None


def available() -> bool:
	"""Whether ``opentelemetry-api`` can be imported (asked once per process)."""
	global _available
	if _available is None:
		try:
			_available = importlib.util.find_spec("opentelemetry") is not None and (
				importlib.util.find_spec("opentelemetry.trace") is not None
			)
		except (ImportError, ValueError):
			_available = False
	return _available


def _tracer() -> Any:
	"""Spine's tracer if a tracer provider is set up in this process (an SDK), else None: with the API
	alone (often installed as another package's dependency) spans would cost time and record nothing."""
	if not available():
		return None
	from opentelemetry import trace as otel

	provider = otel.get_tracer_provider()
	if isinstance(provider, otel.ProxyTracerProvider | otel.NoOpTracerProvider):
		return None
	return provider.get_tracer("spine")


@contextmanager
def span(name: str, parent: str | None, **attributes: Any) -> Iterator[str | None]:
	"""A current span ``name`` under the ``parent`` traceparent while the block runs. Yields the
	span's own traceparent, or None when there is no OpenTelemetry or no SDK records spans."""
	tracer = _tracer()
	if tracer is None:
		yield None
		return
	from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

	propagator = TraceContextTextMapPropagator()
	context = propagator.extract({"traceparent": parent}) if parent else None
	with tracer.start_as_current_span(name, context=context, attributes=_clean(attributes)) as s:
		carrier: dict[str, str] = {}
		if s.is_recording():
			propagator.inject(carrier)
		yield carrier.get("traceparent")


def record(
	name: str, parent: str | None, started_ns: int, ended_ns: int | None = None, **attributes: Any
) -> None:
	"""A finished span ``name`` under ``parent`` that ran from ``started_ns`` (``time.time_ns()``)
	until ``ended_ns`` (now): for stages done for many messages at once (publish, store)."""
	tracer = _tracer() if parent else None
	if tracer is None:
		return
	from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

	context = TraceContextTextMapPropagator().extract({"traceparent": parent})
	s = tracer.start_span(name, context=context, start_time=started_ns, attributes=_clean(attributes))
	s.end(end_time=ended_ns or time.time_ns())


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
	return {f"spine.{k}": v for k, v in attributes.items() if v is not None}
