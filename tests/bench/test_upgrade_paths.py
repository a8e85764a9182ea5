"""An upgraded site keeps working: every dotted path an earlier release published still resolves.

Hooks cached in Redis, Scheduled Job Types, jobs waiting in RQ, Desk pages cached in browsers
and users' handler configs name these paths; they must reach the same functions as the new
ones. And every path Spine itself names (hooks, number cards, chart sources, JS calls) exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.bench.helpers import (
	BenchProcess,
	as_records,
	redis_cache,
	restore_single,
	site_kafka,
	unique,
	wait_for,
)

SPINE = Path(__file__).resolve().parents[2] / "spine"

# old path -> new path; the old ones were public in the first release (hooks, scheduler, jobs, JS, README)
MOVED = {
	"spine.spine_adapter.capture.on_event": "spine.producer.capture.on_event",
	"spine.spine_adapter.relay.drain": "spine.producer.relay.drain",
	"spine.spine_adapter.relay.drain_scheduled": "spine.producer.relay.drain_scheduled",
	"spine.spine_adapter.relay.kick": "spine.producer.relay.kick",
	"spine.spine_adapter.processor.process": "spine.consumer.processor.process",
	"spine.spine_adapter.processor.process_scheduled": "spine.consumer.processor.process_scheduled",
	"spine.spine_adapter.processor.run_job": "spine.consumer.processor.run_job",
	"spine.spine_adapter.intake.store_batch": "spine.consumer.intake.store_batch",
	"spine.spine_adapter.retention.purge_daily": "spine.desk.retention.purge_daily",
	"spine.spine_adapter.install.before_uninstall": "spine.install.before_uninstall",
	"spine.spine_adapter.connection.show_connection": "spine.desk.connection.show_connection",
	"spine.spine_adapter.connection.check_connection": "spine.desk.connection.check_connection",
	"spine.spine_adapter.connection.create_missing_topics": "spine.desk.connection.create_missing_topics",
	"spine.spine_adapter.dashboard.processed_last_hour": "spine.desk.dashboard.processed_last_hour",
	"spine.spine_adapter.dashboard.oldest_pending_minutes": "spine.desk.dashboard.oldest_pending_minutes",
	"spine.spine_adapter.dashboard.consumer_lag_total": "spine.desk.dashboard.consumer_lag_total",
	"spine.spine_adapter.dashboard.messages_per_hour": "spine.desk.dashboard.messages_per_hour",
	"spine.spine_adapter.dashboard.consumer_lag_by_partition": "spine.desk.dashboard.consumer_lag_by_partition",
	"spine.spine_adapter.demo_handlers.record_call": "spine.demo.record_call",
	"spine.spine_adapter.demo_handlers.noop": "spine.demo.noop",
	"spine.spine_adapter.demo_handlers.fail_until": "spine.demo.fail_until",
	"spine.spine_adapter.demo_handlers.add_comment": "spine.demo.add_comment",
	"spine.spine_adapter.demo_handlers.drop_closed": "spine.demo.drop_closed",
	"spine.spine_adapter.demo_handlers.add_marker": "spine.demo.add_marker",
	"spine.spine_adapter.demo_handlers.always_raise": "spine.demo.always_raise",
}
CALLED_FROM_DESK = [old for old in MOVED if ".connection." in old or ".dashboard." in old]


def test_moved_paths_reach_the_same_functions(frappe_site):
	import frappe

	for old, new in MOVED.items():
		assert frappe.get_attr(old) is frappe.get_attr(new), old
	for old in CALLED_FROM_DESK:
		frappe.is_whitelisted(frappe.get_attr(old))  # raises PermissionError if not


def _paths_spine_names() -> set[str]:
	"""Every ``spine.…`` dotted path in hooks.py and in the Desk files (JSON fixtures, JS)."""
	import spine.hooks as hooks
	from spine.config.kafka import REGISTRY_KEYS, SPINE_KEYS

	found = set()

	def walk(value):
		if isinstance(value, str) and value.startswith("spine."):
			found.add(value)
		elif isinstance(value, dict):
			for v in value.values():
				walk(v)
		elif isinstance(value, list | tuple):
			for v in value:
				walk(v)

	for name in dir(hooks):
		if not name.startswith("__"):
			walk(getattr(hooks, name))
	for path in [*SPINE.rglob("*.json"), *SPINE.rglob("*.js"), *SPINE.rglob("*.py")]:
		found.update(re.findall(r"[\"'](spine\.[a-z_]+(?:\.[a-z_]+)+)[\"']", path.read_text()))
	modules = {p.stem for p in SPINE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
	# not settings keys such as spine.max.message.bytes or spine.schema.registry.ssl.ca.location
	settings = {*SPINE_KEYS, *(f"spine.schema.registry.{k}" for k in REGISTRY_KEYS)}
	return {p for p in found if p.split(".")[1] in modules and p not in settings}


def test_every_path_spine_names_resolves(frappe_site):
	import frappe

	paths = _paths_spine_names()
	assert "spine.producer.capture.on_event" in paths and "spine.desk.dashboard.messages_per_hour" in paths
	broken = []
	for path in sorted(paths):
		try:
			frappe.get_attr(path)
		except Exception as e:
			if not _is_module(path):
				broken.append(f"{path}: {e}")
	assert not broken


def _is_module(path: str) -> bool:
	import importlib

	try:
		importlib.import_module(path)
		return True
	except ImportError:
		return False


@pytest.fixture
def producer_route(frappe_site):
	import frappe

	saved = frappe.get_single("Spine Producer Config").as_dict()
	yield
	restore_single("Spine Producer Config", saved, ("enabled",))


@pytest.mark.slow
def test_relay_job_queued_under_the_old_path_publishes(producer_route, frappe_site, kafka_bootstrap):
	"""A relay job left in the short queue by the previous release is run by `bench worker`."""
	import frappe
	from frappe.utils.background_jobs import get_queue

	topic = unique("old-relay")
	with site_kafka(kafka_bootstrap):
		config = frappe.get_single("Spine Producer Config")
		config.enabled = 1
		config.set("configs", [{"document_type": "ToDo", "topic": topic, "on_insert": 1}])
		config.save(ignore_permissions=True)
		frappe.db.commit()
		todo = frappe.get_doc({"doctype": "ToDo", "description": "queued before the upgrade"}).insert()
		frappe.db.commit()
		get_queue("short").empty()  # drop the kick the new release queued; keep only the old-path job
		frappe.enqueue("spine.spine_adapter.relay.drain", queue="short")
		worker = BenchProcess("worker", "--queue", "short", "--burst")
		assert worker.proc.wait(120) == 0, worker.output()[-2000:]

		def published():
			frappe.db.rollback()
			return frappe.db.get_value(
				"Message Log", {"direction": "Outbound", "topic": topic, "document_name": todo.name}, "status"
			)

		assert wait_for(published, 10, what="the outbox row") == "Published", worker.output()[-2000:]


@pytest.mark.slow
def test_intake_job_queued_under_the_old_path_stores_and_handles(frappe_site):
	"""A JSON intake job left in the jsonworkers' queue by the previous release is stored and handled."""
	import frappe

	from spine import envelope
	from spine.consumer.queue import json_queue, shared_queue_name
	from spine.demo import CALLS_KEY

	topic, queue = unique("old-intake"), unique("q")
	saved = frappe.get_single("Spine Consumer Config").as_dict()
	try:
		config = frappe.get_single("Spine Consumer Config")
		config.set(
			"configs",
			[
				{
					"topic": topic,
					"document_type": "ToDo",
					"event_handler": "spine.spine_adapter.demo_handlers.record_call",
				}
			],
		)
		config.save(ignore_permissions=True)
		frappe.db.commit()
		redis_cache().delete_value(CALLS_KEY)
		env = envelope.build(
			doctype="ToDo", docname=unique("todo"), event="on_update", topic=topic,
			payload={"description": "old job"}, origin="other", origin_site="other.site",
		)  # fmt: skip
		name = shared_queue_name(queue)  # where jobs waited before each site had its own queue
		json_queue(name).enqueue(
			"spine.spine_adapter.intake.store_batch", frappe.local.site, as_records(topic, [env]), name
		)
		worker = BenchProcess("jsonworker", "--queue", queue, "--burst")
		assert worker.proc.wait(120) == 0, worker.output()[-2000:]

		def handled():
			frappe.db.rollback()
			return frappe.db.get_value(
				"Message Log", {"direction": "Inbound", "message_id": env.message_id}, "status"
			)

		assert wait_for(handled, 30, what="the stored message") == "Processed", worker.output()[-2000:]
		calls = [c.decode().split()[0] for c in redis_cache().lrange(CALLS_KEY, 0, -1)]
		assert calls == [env.message_id]
	finally:
		restore_single("Spine Consumer Config", saved)
