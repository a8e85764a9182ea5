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
