"""Operator commands: the local development broker."""

from __future__ import annotations

import re
import signal

import pytest

from tests.bench.helpers import BenchProcess, ensure_user, produce, read_topic, unique, wait_for


def test_spine_broker_runs_a_usable_broker_and_prints_the_site_config(frappe_site):
	proc = BenchProcess("spine-broker", "--port", "0")
	try:
		m = wait_for(
			lambda: re.search(r"listening on (127\.0\.0\.1:\d+)", proc.output()),
			60,
			what=lambda: f"the broker to start\n{proc.output()}",
		)
		address = m.group(1)
		assert f'set-config -p kafka \'{{"bootstrap.servers": "{address}"' in proc.output()
		topic = unique("devbroker")
		produce(address, topic, [("k", b'{"hello": 1}', None)])
		assert [msg.value() for msg in read_topic(address, topic, 1, exact_wait=0.5)] == [b'{"hello": 1}']
	finally:
		proc.signal(signal.SIGTERM)
		code = proc.proc.wait(30)
	assert code == 0, proc.output()[-1000:]


def _insert(direction: str, status: str, topic: str) -> int:
	import frappe

	from spine import envelope

	env = envelope.build(
		doctype="ToDo",
		docname="op",
		event="on_update",
		topic=topic,
		payload={"name": "op"},
		origin="o",
		origin_site="elsewhere",
	)
	doc = frappe.get_doc(
		{
			"doctype": "Message Log",
			"direction": direction,
			"status": status,
			"message_id": env.message_id,
			"topic": topic,
			"kafka_key": env.key,
			"document_type": "ToDo",
			"document_name": "op",
			"event": "on_update",
			"origin_site": "elsewhere",
			"attempts": 3,
			"last_error": "boom",
			"message": envelope.encode(env).decode(),
			"kafka_partition": 0,
			"kafka_offset": 1,
		}
	)
	doc.db_insert()
	return doc.name


def test_retry_replay_republish_apply_only_where_they_fit(frappe_site):
	import json

	import frappe

	from spine.spine_adapter.doctype.message_log.message_log import bulk_action

	topic = unique("ops")
	failed = _insert("Inbound", "Failed", topic)
	processed = _insert("Inbound", "Processed", topic)
	published = _insert("Outbound", "Published", topic)
	frappe.db.commit()
	try:
		assert bulk_action("retry", json.dumps([failed, processed])) == {"changed": 1, "ignored": 1}
		row = frappe.db.get_value("Message Log", failed, ["status", "attempts", "last_error"], as_dict=True)
		assert row.status == "Pending" and row.attempts == 0
		assert row.last_error.startswith("Retry by Administrator") and "before: Failed" in row.last_error
		assert "boom" in row.last_error, "the earlier error stays readable"
		history = frappe.db.get_value("Message Log", failed, "attempt_history")
		assert "retry by Administrator (was Failed)" in history

		assert bulk_action("replay", [processed])["changed"] == 1
		assert frappe.db.get_value("Message Log", processed, "status") == "Pending"

		before = frappe.db.count("Message Log", {"topic": topic, "direction": "Outbound"})
		assert bulk_action("republish", [published])["changed"] == 1
		copies = frappe.get_all(
			"Message Log",
			filters={"topic": topic, "direction": "Outbound", "status": "Pending"},
			fields=["message_id", "message"],
		)
		assert frappe.db.count("Message Log", {"topic": topic, "direction": "Outbound"}) == before + 1
		assert json.loads(copies[0].message)["Header"]["MessageId"] == copies[0].message_id
		assert frappe.db.get_value("Message Log", published, "status") == "Published"
		frappe.db.rollback()  # nothing above is committed by the actions themselves

		frappe.set_user("spine-blogger@example.com") if frappe.db.exists(
			"User", "spine-blogger@example.com"
		) else None
		if frappe.session.user != "Administrator":
			import pytest

			with pytest.raises(frappe.PermissionError):
				bulk_action("retry", [failed])
	finally:
		frappe.set_user("Administrator")
		frappe.db.delete("Message Log", {"topic": topic})
		frappe.db.commit()


def test_retention_purge_deletes_only_old_finished_entries_in_batches(frappe_site):
	import datetime

	import frappe

	from spine.desk import retention

	settings = frappe.get_single("Spine Settings")
	saved = (settings.keep_done_days, settings.keep_failed_days, settings.purge_batch_size)
	topic = unique("retention")
	now = frappe.utils.now_datetime()
	rows = {}
	for status, direction, age_days in [
		("Processed", "Inbound", 40), ("Published", "Outbound", 40), ("Skipped", "Inbound", 40),
		("Processed", "Inbound", 5), ("Failed", "Inbound", 40), ("Failed", "Inbound", 100), ("Invalid", "Inbound", 100),
		("Pending", "Outbound", 400), ("Error", "Inbound", 400),
	]:  # fmt: skip
		name = _insert(direction, status, topic)
		frappe.db.sql(
			"UPDATE `tabMessage Log` SET modified = %s WHERE name = %s",
			(now - datetime.timedelta(days=age_days), name),
		)
		rows[(status, age_days)] = name
	frappe.db.commit()
	try:
		settings.keep_done_days, settings.keep_failed_days, settings.purge_batch_size = 30, 90, 100
		settings.save()
		frappe.db.sql(
			"UPDATE `tabSingles` SET value = 2 WHERE doctype = 'Spine Settings' AND field = 'purge_batch_size'"
		)
		frappe.db.commit()  # batch of 2 (below the form's minimum) to exercise several batches
		retention.purge(now)
		left = {r.name for r in frappe.get_all("Message Log", filters={"topic": topic}, fields=["name"])}
		assert left == {
			rows[("Processed", 5)],
			rows[("Failed", 40)],
			rows[("Pending", 400)],
			rows[("Error", 400)],
		}
	finally:
		settings = frappe.get_single("Spine Settings")
		settings.keep_done_days, settings.keep_failed_days, settings.purge_batch_size = saved
		settings.save()
		frappe.db.delete("Message Log", {"topic": topic})
		frappe.db.commit()


def test_check_connection_reports_topics_and_creates_missing_ones(frappe_site, kafka_bootstrap):
	import frappe

	from spine.desk.connection import check_connection, create_missing_topics
	from tests.bench.helpers import restore_single, site_kafka

	topic = unique("checked")
	doc = frappe.get_single("Spine Consumer Config")
	saved = doc.as_dict()
	doc.set(
		"configs",
		[
			{
				"topic": topic,
				"document_type": "Item",
				"event_handler": "spine.demo.noop",
			}
		],
	)
	doc.save()
	frappe.db.commit()
	try:
		# the block's spine.topic.partitions (default: the cluster's num.partitions) lays the topic out
		with site_kafka(kafka_bootstrap, **{"spine.topic.partitions": 3}):
			report = check_connection("Spine Consumer Config")
			assert report["ok"] and report["topics"] == [
				{"topic": topic, "exists": False, "partitions": None}
			]
			assert create_missing_topics("Spine Consumer Config") == {topic: None}
			assert check_connection("Spine Consumer Config")["topics"][0]["exists"] is True
			from spine.desk.connection import show_connection

			frappe.local.message_log = []
			assert show_connection("Spine Consumer Config")["ok"]
			assert "exists (3 partitions)" in str(frappe.local.message_log[-1])
		with site_kafka("127.0.0.1:1"):
			down = check_connection("Spine Consumer Config")
			assert down["ok"] is False and "did not answer" in down["error"]
		with pytest.raises(frappe.ValidationError):
			check_connection("User")
		frappe.set_user(ensure_user("spine-blogger@example.com", "Blogger"))
		with pytest.raises(frappe.PermissionError):
			check_connection("Spine Consumer Config")
	finally:
		frappe.set_user("Administrator")
		restore_single("Spine Consumer Config", saved)


def test_spine_processes_prints_procfile_and_supervisor_entries(frappe_site):
	proc = BenchProcess("spine-processes", "--queue", "kafka_events", "--numworkers", "2")
	assert proc.proc.wait(60) == 0, proc.output()
	assert "eventdispatcher --queue kafka_events --numworkers 2" in proc.output()
	assert "jsonworker --queue kafka_events --numworkers 2" in proc.output()
	sup = BenchProcess("spine-processes", "--supervisor")
	assert sup.proc.wait(60) == 0 and sup.output().count("stopsignal=QUIT") == 3
	assert "spine-relay" in proc.output() and "spine-relay" in sup.output()


@pytest.mark.slow
def test_dispatcher_and_worker_stop_cleanly_on_sigquit(frappe_site, kafka_bootstrap):
	"""supervisor's stopsignal=QUIT reaches the main process only; it passes it on and every child exits 0."""
	import os

	from tests.bench.helpers import site_kafka

	queue = unique("q")
	with site_kafka(kafka_bootstrap, **{"group.id": unique("quit-group")}):
		dispatcher = BenchProcess("eventdispatcher", "--queue", queue, "--numworkers", "2")
		worker = BenchProcess("jsonworker", "--queue", queue, "--numworkers", "2")
		try:
			wait_for(
				lambda: dispatcher.output().count("eventdispatcher-") >= 2,
				60,
				what=lambda: dispatcher.output(),
			)
			wait_for(lambda: worker.output().count("executing jobs") == 2, 60, what=lambda: worker.output())
			for proc in (dispatcher, worker):
				os.kill(proc.proc.pid, signal.SIGQUIT)
			assert dispatcher.proc.wait(60) == 0, dispatcher.output()[-2000:]
			assert worker.proc.wait(60) == 0, worker.output()[-2000:]
			assert dispatcher.output().count("stopped after handing over") == 2
		finally:
			dispatcher.stop()
			worker.stop()
