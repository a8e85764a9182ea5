"""Prometheus metrics of the real processes after a known flow, and one trace from a save on one
site to the handler on another."""

from __future__ import annotations

import re
import socket
import urllib.request

from tests.bench.helpers import (
	BenchProcess,
	Courier,
	inbound,
	on_site,
	redis_cache,
	restore_single,
	site_kafka,
	unique,
	wait_for,
)
from tests.conftest import create_topic

DEMO = "spine.demo"


def free_port() -> int:
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


def scrape(port: int) -> dict[str, float]:
	"""Every sample of ``/metrics`` as ``{'name{labels}': value}``."""
	text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
	return {
		line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
		for line in text.splitlines()
		if line and not line.startswith("#")
	}


def total(samples: dict[str, float], name: str, **labels: str) -> float:
	"""The sum of ``name``'s samples whose labels include ``labels``."""
	found = 0.0
	for key, value in samples.items():
		metric, _, rest = key.partition("{")
		have = dict(re.findall(r'(\w+)="([^"]*)"', rest))
		if metric == name and all(have.get(k) == v for k, v in labels.items()):
			found += value
	return found


def save_in_request(traceparent: str, description: str):
	"""A ToDo inserted and committed as if in a web request that carries ``traceparent``."""
	import frappe
	from werkzeug.test import EnvironBuilder
	from werkzeug.wrappers import Request

	frappe.local.request = Request(EnvironBuilder(headers={"traceparent": traceparent}).get_environ())
	try:
		todo = frappe.get_doc({"doctype": "ToDo", "description": description}).insert()
		frappe.db.commit()
	finally:
		frappe.local.request = None
	return todo


ROUTE = {"document_type": "ToDo", "on_insert": 1, "on_update": 0}


def test_each_process_serves_the_exact_counts_of_a_flow(
	consumer_config, routes, frappe_site, kafka_bootstrap
):
	"""100 single-commit saves on a site that handles its own topic, 2 of them failing for good:
	the relay, the dispatcher and the jsonworker each serve exactly what they did."""
	import frappe

	from spine.desk.status import consumer_lag

	topic = create_topic(kafka_bootstrap, 3, prefix="metrics")
	consumer_config(
		{"topic": topic, "document_type": "ToDo", "event_handler": f"{DEMO}.fail_marked"},
		max_attempts=1,
		test_mode=1,
	)
	routes({**ROUTE, "topic": topic})
	ports = {"relay": free_port(), "dispatcher": free_port(), "worker": free_port()}
	procs = []
	site = frappe.local.site
	try:
		with site_kafka(kafka_bootstrap, **{"group.id": unique("metrics")}):
			queue = unique("q")
			procs = [
				BenchProcess("spine-relay", "--metrics-port", str(ports["relay"])),
				BenchProcess("eventdispatcher", "--queue", queue, "--metrics-port", str(ports["dispatcher"])),
				BenchProcess("jsonworker", "--queue", queue, "--numworkers", "2", "--metrics-port", str(ports["worker"])),
			]  # fmt: skip
			wait_for(lambda: "assigned" in procs[1].output(), 60, what=lambda: procs[1].output()[-2000:])
			for i in range(100):
				mark = "FAIL" if i in (17, 71) else "ok"
				frappe.get_doc({"doctype": "ToDo", "description": f"{mark} metrics {topic} {i}"}).insert()
				frappe.db.commit()

			def finished() -> bool:
				rows = inbound(topic)
				return len(rows) == 100 and all(r.status in ("Processed", "Failed") for r in rows)

			wait_for(finished, 90, what=lambda: "\n".join(p.output()[-1500:] for p in procs))
			relay, worker = scrape(ports["relay"]), scrape(ports["worker"])

			def gauge_and_status() -> tuple[dict, dict, dict, dict]:
				# the gauge is reported every 5 s and the offsets committed within a second of storing:
				# right after the last message is handled either may still show the moment before
				scraped, report = scrape(ports["dispatcher"]), consumer_lag()
				gauge = {
					int(re.search(r'partition="(\d+)"', k)[1]): v
					for k, v in scraped.items()
					if k.startswith("spine_consumer_lag") and f'topic="{topic}"' in k
				}
				status = {
					p["partition"]: float(p["lag"]) for p in report["partitions"] if p["topic"] == topic
				}
				return gauge, status, scraped, report

			def settled() -> bool:
				gauge, status, *_ = gauge_and_status()
				return len(status) == 3 and not any(status.values()) and gauge == status

			wait_for(
				settled,
				30,
				what=lambda: f"lag gauges and spine-status both 0 on 3 partitions: {gauge_and_status()[:2]}",
			)
			lag, status_lag, dispatcher, report = gauge_and_status()
			dispatcher_log = procs[1].output()[-3000:]
	finally:
		for p in procs:
			p.stop()
		frappe.db.delete("ToDo", {"description": ("like", f"% metrics {topic} %")})
		frappe.db.commit()

	assert {r.status for r in inbound(topic)} == {"Processed", "Failed"}
	on = {"site": site, "topic": topic}
	assert total(relay, "spine_events_captured_total", **on) == 100
	assert total(relay, "spine_messages_published_total", **on) == 100
	assert total(relay, "spine_publish_failures_total", **on) == 0
	assert total(relay, "spine_commit_to_published_seconds_count", **on) == 100
	assert total(relay, "spine_process_up", site=site, process="spine-relay") == 1
	assert "spine_outbox_pending" in "".join(relay), "the outbox gauge is served"

	assert total(worker, "spine_messages_stored_total", **on, status="Pending") == 100
	assert total(worker, "spine_messages_handled_total", **on, status="Processed") == 98
	assert total(worker, "spine_messages_handled_total", **on, status="Failed") == 2
	assert total(worker, "spine_published_to_stored_seconds_count", **on) == 100
	assert total(worker, "spine_stored_to_handled_seconds_count", **on) == 100
	assert total(worker, "spine_handler_seconds_count", **on) == 100
	assert total(worker, "spine_handler_seconds_sum", **on) > 0
	assert total(worker, "spine_process_up", site=site, process="jsonworker") == 2

	assert lag == status_lag, f"the lag gauge says what spine-status says\n{report}\n{dispatcher_log}"
	assert total(dispatcher, "spine_process_up", site=site, process="eventdispatcher") == 1


def test_a_traceparent_is_the_same_on_both_sites_and_in_the_handler(
	routes, frappe_site, second_site, kafka_bootstrap
):
	"""A save made in a web request with a traceparent: the outbound row on A continues that trace
	with a span of its own, and the inbound row on B and B's handler carry the same traceparent."""
	import frappe

	from spine import trace
	from spine.demo import TRACES_KEY
	from spine.producer import relay

	incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	topic = create_topic(kafka_bootstrap, 1, prefix="trace")
	routes({**ROUTE, "topic": topic})
	with on_site(second_site):
		saved_b = frappe.get_single("Spine Consumer Config").as_dict()
		doc = frappe.get_single("Spine Consumer Config")
		doc.enabled = 1
		doc.set(
			"configs", [{"topic": topic, "document_type": "ToDo", "event_handler": f"{DEMO}.record_trace"}]
		)
		doc.save(ignore_permissions=True)
	todo = None
	try:
		with site_kafka(kafka_bootstrap):
			courier = Courier(kafka_bootstrap, [topic])
			todo = save_in_request(incoming, f"trace {topic}")
			relay.drain()
			out = frappe.db.get_value(
				"Message Log",
				{"direction": "Outbound", "topic": topic},
				["message_id", "trace_parent"],
				as_dict=True,
			)
			with on_site(second_site):
				redis_cache().delete_value(
					TRACES_KEY
				)  # the site's own key (the cache is namespaced per site)
				assert courier.deliver(expect=1) == 1
				got = frappe.db.get_value(
					"Message Log", {"direction": "Inbound", "message_id": out.message_id},
					["trace_parent", "status"], as_dict=True,
				)  # fmt: skip
				calls = [c.decode() for c in redis_cache().lrange(TRACES_KEY, 0, -1)]
			courier.close()
	finally:
		if todo:
			frappe.db.delete("ToDo", {"name": todo.name})
		frappe.db.commit()
		with on_site(second_site):
			restore_single("Spine Consumer Config", saved_b, ("enabled",))
	assert trace.trace_id(out.trace_parent) == trace.trace_id(incoming), "the save's trace continues"
	assert out.trace_parent != incoming, "with a span of its own"
	assert got.status == "Processed" and got.trace_parent == out.trace_parent
	assert calls == [f"{out.message_id} {out.trace_parent}"], "the handler gets the same traceparent"


def test_the_spans_of_one_save_form_one_trace(consumer_config, routes, frappe_site, kafka_bootstrap):
	"""With an OpenTelemetry SDK in the process: capture, publish, store and handle of one save are
	spans of the web request's trace, the later ones children of the capture span."""
	import frappe
	from opentelemetry import trace as otel
	from opentelemetry.sdk.trace import TracerProvider
	from opentelemetry.sdk.trace.export import SimpleSpanProcessor
	from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

	from spine import trace
	from spine.producer import relay

	exporter = InMemorySpanExporter()
	provider = TracerProvider()
	provider.add_span_processor(SimpleSpanProcessor(exporter))
	otel.set_tracer_provider(provider)
	incoming = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	topic = create_topic(kafka_bootstrap, 1, prefix="spans")
	consumer_config(
		{"topic": topic, "document_type": "ToDo", "event_handler": f"{DEMO}.record_trace"}, test_mode=1
	)
	routes({**ROUTE, "topic": topic})
	todo = None
	try:
		with site_kafka(kafka_bootstrap):
			courier = Courier(kafka_bootstrap, [topic])
			todo = save_in_request(incoming, f"spans {topic}")
			relay.drain()
			assert courier.deliver(expect=1) == 1
			courier.close()
		out = frappe.db.get_value("Message Log", {"direction": "Outbound", "topic": topic}, "trace_parent")
	finally:
		if todo:
			frappe.db.delete("ToDo", {"name": todo.name})
		frappe.db.commit()
	mine = [
		s for s in exporter.get_finished_spans() if s.context.trace_id == int(trace.trace_id(incoming), 16)
	]
	by_name = {s.name: s for s in mine}
	assert set(by_name) >= {"spine capture", "spine publish", "spine store", "spine handle"}, [
		s.name for s in mine
	]
	capture = by_name["spine capture"]
	assert capture.parent.span_id == int("00f067aa0ba902b7", 16), "the capture span continues the request"
	assert out == f"00-{trace.trace_id(incoming)}-{capture.context.span_id:016x}-01", "the message carries it"
	for name in ("spine publish", "spine store", "spine handle"):
		assert by_name[name].parent.span_id == capture.context.span_id, name
