"""Prometheus metrics of Spine's long-running processes. Plain Python (``prometheus_client``), no Frappe.

Off unless a process calls ``serve(port)``: then every recording call below counts, in every
process forked from it afterwards too (``prometheus_client``'s multi-process mode: each process
writes its values to files in a folder of its own command, and the one HTTP server adds them
up). While off, a recording call returns at once and ``prometheus_client`` is never imported.

Labels: ``site`` always; ``topic`` where a message has one; ``status``, ``outcome`` or
``partition`` where they mean something. Names follow Prometheus conventions (README, "Metrics").
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

# name: (kind, help, label names); histograms in seconds
DEFINITIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
	"spine_events_captured_total": ("counter", "Events the relay found in the outbox (each counted when first read)", ("site", "topic")),
	"spine_messages_published_total": ("counter", "Messages the broker confirmed", ("site", "topic")),
	"spine_publish_failures_total": ("counter", "Publish attempts the broker refused or did not confirm", ("site", "topic")),
	"spine_messages_stored_total": ("counter", "Inbound messages stored in Message Log, by the status they were stored with", ("site", "topic", "status")),
	"spine_messages_handled_total": ("counter", "Inbound messages that reached a final status, by status (Processed, Skipped, Failed, ...)", ("site", "topic", "status")),
	"spine_messages_retried_total": ("counter", "Handling attempts that failed and will be retried", ("site", "topic")),
	"spine_sync_outcomes_total": ("counter", "Spine Sync Rule outcomes (create, update, skip, wait, delete, ...)", ("site", "topic", "outcome")),
	"spine_replies_received_total": ("counter", "Replies handed to a waiting request by the dispatcher", ("site",)),
	"spine_requests_published_total": ("counter", "Requests to other sites the relay published", ("site", "topic")),
	"spine_commit_to_published_seconds": ("histogram", "From the event's commit (its outbox row) to the broker's confirmation", ("site", "topic")),
	"spine_published_to_stored_seconds": ("histogram", "From the message's Kafka timestamp to its Message Log row", ("site", "topic")),
	"spine_stored_to_handled_seconds": ("histogram", "From the Message Log row to its final status", ("site", "topic")),
	"spine_handler_seconds": ("histogram", "Sync rule and handlers of one message (or one batch-handler call)", ("site", "topic")),
	"spine_request_to_reply_seconds": ("histogram", "From a request's timestamp to its reply reaching this site's dispatcher", ("site",)),
	"spine_outbox_pending": ("gauge", "Outbound rows waiting to be published", ("site",)),
	"spine_inbound_pending": ("gauge", "Inbound rows waiting to be handled (Pending and due retries)", ("site",)),
	"spine_inbound_waiting": ("gauge", "Inbound rows waiting for another document (sync) or a retry", ("site",)),
	"spine_oldest_pending_seconds": ("gauge", "Age of the oldest row waiting, by direction", ("site", "direction")),
	"spine_consumer_lag": ("gauge", "Messages of a partition the group has not committed (end - committed)", ("site", "topic", "partition")),
	"spine_process_up": ("gauge", "Spine processes running, by kind", ("site", "process")),
}  # fmt: skip
# Gauges a single process owns take that process's latest value; spine_process_up adds up the living.
_GAUGE_MODE = {"spine_process_up": "livesum"}
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

_metrics: dict[str, Any] | None = None  # set by serve(), inherited by forked children
_folder: str | None = None


def enabled() -> bool:
	return _metrics is not None


def serve(port: int, *, host: str = "0.0.0.0") -> str:
	"""Serve ``/metrics`` on ``port`` from this process, adding up the values of this process and of
	every process forked from it afterwards. Call before forking. Returns the folder holding the
	values (emptied now, removed at exit)."""
	global _metrics, _folder
	import atexit

	_folder = tempfile.mkdtemp(prefix=f"spine-metrics-{os.getpid()}-")
	os.environ["PROMETHEUS_MULTIPROC_DIR"] = _folder  # before prometheus_client is first imported
	from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
	from prometheus_client.multiprocess import MultiProcessCollector

	made: dict[str, Any] = {}
	for name, (kind, text, labels) in DEFINITIONS.items():
		if kind == "counter":
			made[name] = Counter(name, text, labels)
		elif kind == "histogram":
			made[name] = Histogram(name, text, labels, buckets=BUCKETS)
		else:
			made[name] = Gauge(name, text, labels, multiprocess_mode=_GAUGE_MODE.get(name, "mostrecent"))
	registry = CollectorRegistry()
	MultiProcessCollector(registry, path=_folder)
	start_http_server(port, addr=host, registry=registry)
	_metrics = made
	owner = os.getpid()
	atexit.register(lambda: os.getpid() == owner and shutil.rmtree(_folder, ignore_errors=True))
	return _folder


def process_exited(pid: int) -> None:
	"""Forget a child's live gauges (``spine_process_up``) once it exited."""
	if _folder:
		from prometheus_client import multiprocess

		multiprocess.mark_process_dead(pid, _folder)


def inc(name: str, amount: float = 1, **labels: Any) -> None:
	"""Add ``amount`` to counter ``name`` (no-op while metrics are off)."""
	if _metrics is not None and amount:
		_child(name, labels).inc(amount)


def observe(name: str, seconds: float, **labels: Any) -> None:
	"""Record one observation in histogram ``name`` (no-op while metrics are off)."""
	if _metrics is not None:
		_child(name, labels).observe(max(seconds, 0.0))


def set_gauge(name: str, value: float, **labels: Any) -> None:
	"""Set gauge ``name`` (no-op while metrics are off)."""
	if _metrics is not None:
		_child(name, labels).set(value)


_children: dict[tuple, Any] = {}  # (name, labels) -> the labelled metric (prometheus' lookup is slower)


def _child(name: str, labels: dict[str, Any]) -> Any:
	key = (name, *labels.items())
	child = _children.get(key)
	if child is None:
		child = _children[key] = _metrics[name].labels(
			**{k: "" if v is None else str(v) for k, v in labels.items()}
		)
	return child
