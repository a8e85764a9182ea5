"""Consumer on a real site, broker, Redis and RQ: dispatcher, jsonworker, intake, processor."""

from __future__ import annotations

import json
import re
import signal
import time

import pytest

from spine import envelope
from tests.bench.helpers import (
	BenchProcess,
	Pipeline,
	as_records,
	calls,
	inbound,
	produce,
	redis_cache,
	restore_single,
	site_kafka,
	spine_message,
	unique,
	wait_for,
)

DEMO = "spine.demo"


@pytest.fixture
def kafka_on_site(frappe_site, kafka_bootstrap):
	with site_kafka(kafka_bootstrap, **{"group.id": unique("spine-test-group")}) as conf:
		yield conf


@pytest.mark.slow
def test_messages_reach_handlers_and_bad_input_is_contained(
	consumer_config, kafka_on_site, kafka_bootstrap, reset_calls
):
	from tests.conftest import create_topic

	topic = create_topic(kafka_bootstrap, partitions=3, prefix="consume")
	consumer_config({"topic": topic, "document_type": "Item", "event_handler": f"{DEMO}.record_call"})
	spine_env, spine_item = spine_message(topic, "Item", "ITEM-1")
	original = {  # the original Spine Adapter's envelope: no MessageId, double spaces, no key
		"Payload": {"name": "ITEM-2", "doctype": "Item"},
		"Header": {
			"Origin": "withrun.local",
			"Timestamp": "2019-08-17 02:24:22.235807",
			"DocType": "Item",
			"Event": "on_update",
			"Topic": topic,
		},
		"Retry": {},
	}
	_, unknown = spine_message(topic, "Nonexistent DocType", "X-1")
	import frappe

	own_env = envelope.build(
		doctype="Item",
		docname="ITEM-3",
		event="on_update",
		topic=topic,
		payload={"name": "ITEM-3"},
		origin="x",
		origin_site=frappe.local.site,  # whatever the site under test is called
	)
	items = [
		spine_item,
		(None, json.dumps(original, indent=2).encode(), None),
		(None, b"\xff\xfe not utf-8", None),
		("k", b"{not json", None),
		unknown,
		(own_env.key, envelope.encode(own_env), own_env.headers()),
	]
	produce(kafka_bootstrap, topic, items)
	pipe = Pipeline(unique("q"))
	try:
		rows = wait_for(
			lambda: (r := inbound(topic))
			and len(r) == 6
			and all(x.status not in ("Pending", "Error") for x in r)
			and r,
			60,
			what=lambda: f"6 finished rows\n{pipe.logs()}",
		)
	finally:
		pipe.stop()
	by_name = {r.document_name: r for r in rows if r.document_name}
	assert by_name["ITEM-1"].status == "Processed" and by_name["ITEM-1"].message_id == spine_env.message_id
	assert by_name["ITEM-2"].status == "Processed" and by_name["ITEM-2"].message_id.startswith(
		f"kafka:{topic}:"
	)
	assert by_name["X-1"].status == "Skipped" and "is not a DocType on this site" in by_name["X-1"].last_error
	assert by_name["ITEM-3"].status == "Skipped" and "published by this site" in by_name["ITEM-3"].last_error
	invalid = sorted(r.last_error for r in rows if r.status == "Invalid")
	assert (
		len(invalid) == 2
		and "not valid UTF-8" in invalid[1] + invalid[0]
		and "not JSON" in invalid[0] + invalid[1]
	)
	assert sorted(calls()) == sorted([spine_env.message_id, "ITEM-2"])


@pytest.mark.slow
def test_retries_failures_and_per_document_order(
	consumer_config, kafka_on_site, kafka_bootstrap, reset_calls
):
	from spine.consumer import processor
	from tests.conftest import create_topic

	topic = create_topic(kafka_bootstrap, partitions=1, prefix="retry")
	# retries come due without any scheduler (the dispatcher kicks processing): a backoff long enough
	# that ALWAYS is still failing when the later event of its document is looked at
	consumer_config(
		{"topic": topic, "document_type": "Item", "event_handler": f"{DEMO}.fail_until"},
		max_attempts=3,
		backoff=5,
	)
	twice, _ = spine_message(topic, "Item", "TWICE", {"fail_times": 2})
	always, _ = spine_message(topic, "Item", "ALWAYS", {"fail_times": 99})
	after_always, _ = spine_message(topic, "Item", "ALWAYS", {"fail_times": 0})  # same document, later event
	other, _ = spine_message(topic, "Item", "OTHER", {"fail_times": 0})
	envs = [twice, always, after_always, other]
	produce(kafka_bootstrap, topic, [(e.key, envelope.encode(e), e.headers()) for e in envs])
	pipe = Pipeline(unique("q"))
	try:
		wait_for(lambda: len(inbound(topic)) == 4, 60, what=lambda: f"4 stored rows\n{pipe.logs()}")
		# other documents do not wait for a failing one
		wait_for(lambda: other.message_id in calls(), 30, what="OTHER handled while ALWAYS fails")
		state = {r.message_id: r for r in inbound(topic)}
		assert (
			state[after_always.message_id].status == "Pending"
		), "waits behind the failing event of its document"

		def settled():
			processor.process(max_seconds=5)  # the per-minute scheduler's job, run now
			rows = {r.message_id: r for r in inbound(topic)}
			return all(r.status in ("Processed", "Failed") for r in rows.values()) and rows

		rows = wait_for(settled, 60, interval=0.5, what="retries to finish")
	finally:
		pipe.stop()
	assert rows[twice.message_id].status == "Processed" and rows[twice.message_id].attempts == 2
	assert "demo failure 2 of 2" in rows[twice.message_id].last_error
	assert rows[always.message_id].status == "Failed" and rows[always.message_id].attempts == 3
	assert "RuntimeError" in rows[always.message_id].last_error
	import frappe

	history = frappe.db.get_value("Message Log", rows[always.message_id].name, "attempt_history").splitlines()
	assert len(history) == 3 and "attempt 1" in history[0] and "will retry" in history[0]
	assert "marked Failed after 3 attempts" in history[2]
	assert rows[after_always.message_id].status == "Processed", "a Failed event no longer blocks its document"
	order = calls()
	assert order.index(other.message_id) < order.index(twice.message_id)
	assert order.index(after_always.message_id) > order.index(other.message_id)


def test_handler_effects_and_status_commit_together(consumer_config, frappe_site, reset_calls):
	"""A handler that writes and then raises leaves no write behind; a good one commits with Processed."""
	import frappe

	from spine.consumer import intake, processor

	topic = unique("tx")
	consumer_config(
		{"topic": topic, "document_type": "ToDo", "event_handler": f"{DEMO}.add_comment"}, max_attempts=1
	)
	good, _ = spine_message(topic, "ToDo", "T-GOOD")
	bad, _ = spine_message(topic, "ToDo", "T-BAD", {"fail_after_write": 1})
	records = as_records(topic, [good, bad])
	assert intake.store(records) == 2
	assert intake.store(records) == 0, "a redelivered batch stores nothing"
	frappe.db.commit()
	processor.process(max_seconds=10)
	rows = {r.message_id: r for r in inbound(topic)}
	assert rows[good.message_id].status == "Processed" and rows[bad.message_id].status == "Failed"

	def comments(mid):
		return frappe.db.count("Comment", {"content": f"spine-demo {mid}"})

	assert comments(good.message_id) == 1
	assert comments(bad.message_id) == 0, "the failed handler's write was rolled back"


def test_ids_that_do_not_fit_their_column_never_merge_two_messages(frappe_site):
	"""Ids differing after 140 characters, or only in case or a trailing space, are distinct messages;
	a redelivery of any of them is still dropped; long topics and keys are kept apart too."""
	import frappe

	from spine.consumer import intake

	topic = unique("ids") + "-" + "t" * 200  # Kafka allows 249 characters
	long_prefix = "m" * 140
	ids = [f"{long_prefix}-first", f"{long_prefix}-second", "Order-1", "order-1", "order-1 ", "ORDER-1"]
	envs = [
		envelope.build(
			doctype="ToDo", docname=f"doc-{i}", event="on_update", topic=topic, payload={},
			origin="other", origin_site="other.site", message_id=mid,
		)
		for i, mid in enumerate(ids)
	]  # fmt: skip
	records = as_records(topic, envs)
	records[0]["key"] = "K" * 400 + "-a"  # keys longer than the column, sharing 400 characters
	records[1]["key"] = "K" * 400 + "-b"
	try:
		assert intake.store(records) == len(ids)
		assert intake.store(records) == 0, "a redelivery of the same messages stores nothing"
		frappe.db.commit()
		rows = frappe.get_all(
			"Message Log", {"direction": "Inbound", "topic": ("like", topic[:100] + "%")},
			["message_id", "kafka_key", "topic", "document_name"],
		)  # fmt: skip
		assert len(rows) == len(ids)
		assert len({r.message_id.lower().rstrip() for r in rows}) == len(ids)
		assert len({r.kafka_key for r in rows if r.document_name in ("doc-0", "doc-1")}) == 2
		assert {r.topic for r in rows} == {topic}
	finally:
		frappe.db.delete("Message Log", {"topic": ("like", topic[:100] + "%")})
		frappe.db.commit()


def test_concurrent_processors_never_handle_a_row_twice(consumer_config, frappe_site, reset_calls):
	import frappe

	from spine.consumer import intake

	topic = unique("concurrent")
	consumer_config({"topic": topic, "document_type": "Item", "event_handler": f"{DEMO}.record_call"})
	envs = [spine_message(topic, "Item", f"I-{i % 10}")[0] for i in range(200)]
	intake.store(as_records(topic, envs))
	frappe.db.commit()
	procs = [BenchProcess("execute", "spine.consumer.processor.process") for _ in range(3)]
	for p in procs:
		assert p.proc.wait(120) == 0, p.output()[-2000:]
	rows = inbound(topic)
	assert {r.status for r in rows} == {"Processed"}
	got = calls()
	assert sorted(got) == sorted(e.message_id for e in envs), "each message handled exactly once"
	for i in range(10):  # per document, in offset order
		mine = [e.message_id for e in envs if e.docname == f"I-{i}"]
		assert [c for c in got if c in set(mine)] == mine


@pytest.mark.slow
def test_killed_dispatcher_and_worker_lose_nothing_and_store_nothing_twice(
	consumer_config, frappe_site, kafka_bootstrap
):
	"""SIGKILL both mid-stream, restart them at once (as a supervisor does): the restarted dispatcher
	is given its partitions again within 10 s, and every message is stored exactly once.

	The kafka block sets no ``group.instance.id`` (as the original adapter's does): a dynamic member
	would hold the partitions for session.timeout.ms (45 s on Kafka; for ever on the dev broker).
	"""
	import frappe

	from tests.conftest import create_topic

	topic = create_topic(kafka_bootstrap, partitions=3, prefix="kill")
	consumer_config({"topic": topic, "document_type": "Item", "event_handler": f"{DEMO}.noop"})
	envs = [spine_message(topic, "Item", f"K-{i % 50}")[0] for i in range(20_000)]
	produce(kafka_bootstrap, topic, [(e.key, envelope.encode(e), e.headers()) for e in envs])
	queue = unique("q")
	after = frappe.db.sql("SELECT COALESCE(MAX(name), 0) FROM `tabMessage Log`")[0][0]

	def stored() -> int:  # by primary key range: fast enough to catch the stream in the middle
		frappe.db.rollback()
		return frappe.db.sql(
			"SELECT COUNT(*) FROM `tabMessage Log` WHERE name > %s AND topic = %s", (after, topic)
		)[0][0]

	with site_kafka(kafka_bootstrap, **{"group.id": unique("kill-group")}):
		pipe = Pipeline(queue, workers=2)
		try:
			wait_for(
				lambda: stored() > 0, 120, interval=0.02, what=lambda: f"some rows stored\n{pipe.logs()}"
			)
			pipe.dispatcher.kill()
			pipe.worker.kill()
			stored_at_kill = stored()
			pipe = Pipeline(queue, workers=2)
			restarted = time.monotonic()
			wait_for(
				lambda: _assigned(pipe.dispatcher.output()) == {0, 1, 2}, 60, interval=0.1,
				what=lambda: f"the restarted dispatcher's partitions\n{pipe.logs()}",
			)  # fmt: skip
			resumed_after = time.monotonic() - restarted
			wait_for(
				lambda: stored() == len(envs),
				300,
				interval=1,
				what=lambda: f"all stored (have {stored()})\n{_rq_state(queue)}\n{pipe.logs()}",
			)
		finally:
			pipe.stop()
	assert stored_at_kill < len(envs), "the kill happened mid-stream"
	assert resumed_after < 10, f"the restarted dispatcher got its partitions after {resumed_after:.1f}s"
	ids = [r.message_id for r in inbound(topic)]
	assert len(ids) == len(set(ids)) == len(envs)
	assert set(ids) == {e.message_id for e in envs}
	assert frappe.db.count("Message Log", {"topic": topic, "direction": "Inbound"}) == len(envs)


@pytest.mark.slow
def test_two_dispatchers_share_partitions_and_take_over(consumer_config, kafka_on_site, kafka_bootstrap):
	from tests.conftest import create_topic

	topic = create_topic(kafka_bootstrap, partitions=3, prefix="share")
	consumer_config({"topic": topic, "document_type": "Item", "event_handler": f"{DEMO}.noop"})
	queue = unique("q")
	first = BenchProcess("eventdispatcher", "--queue", queue)
	wait_for(
		lambda: re.search(r"assigned .*\[2\]", first.output()),
		60,
		what=lambda: f"first assignment\n{first.output()}",
	)
	second = BenchProcess("eventdispatcher", "--queue", queue)
	worker = BenchProcess("jsonworker", "--queue", queue)
	try:

		def split():
			a, b = _assigned(first.output()), _assigned(second.output())
			return a and b and not (a & b) and (a | b) == {0, 1, 2} and (a, b)

		a, b = wait_for(
			split, 90, interval=0.5, what=lambda: f"a shared assignment\n{first.output()}\n{second.output()}"
		)
		assert a and b
		first.signal(signal.SIGTERM)
		assert first.proc.wait(60) == 0, first.output()[-2000:]
		assert "stopped after handing over" in first.output()
		wait_for(
			lambda: _assigned(second.output()) == {0, 1, 2},
			90,
			interval=0.5,
			what=lambda: f"the second to take all partitions\n{second.output()}",
		)
		envs = [spine_message(topic, "Item", f"S-{i}")[0] for i in range(30)]
		produce(kafka_bootstrap, topic, [(e.key, envelope.encode(e), e.headers()) for e in envs])
		wait_for(lambda: len(inbound(topic)) == 30, 60, what="messages stored after the hand-over")
	finally:
		for p in (first, second, worker):
			p.stop()


def _assigned(log: str) -> set[int]:
	"""Partitions currently assigned according to a dispatcher's log (last assign/revoke wins)."""
	current: set[int] = set()
	for line in log.splitlines():
		m = re.search(r": assigned (.*)$", line)
		if m:
			current = {int(p) for p in re.findall(r"\[(\d+)\]", m.group(1))}
		elif "revoked" in line:
			current = set()
	return current


def _rq_state(queue: str) -> str:
	"""Counts of the queue's RQ registries, for failure messages."""
	import frappe
	from rq.registry import DeferredJobRegistry, FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

	from spine.consumer.queue import json_queue, site_queue_name

	q = json_queue(site_queue_name(queue, frappe.local.site))
	regs = {
		cls.__name__: len(cls(queue=q))
		for cls in (StartedJobRegistry, DeferredJobRegistry, ScheduledJobRegistry, FailedJobRegistry)
	}
	return f"queued={len(q)} {regs}"
