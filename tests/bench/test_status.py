"""bench spine-status: the report, its JSON form, and the health-check exit code."""

from __future__ import annotations

import datetime
import json

from tests.bench.helpers import BenchProcess, unique

YEAR = str(365 * 24 * 3600)


def status(*args: str) -> tuple[int, str]:
	proc = BenchProcess("spine-status", *args)
	code = proc.proc.wait(120)
	return code, proc.output()


def test_status_json_and_exit_code(frappe_site):
	import frappe

	from spine.message_log import OUTBOUND_INSERT_SQL as INSERT_SQL

	code, out = status("--json", "--no-lag", "--max-age", YEAR)
	assert code == 0, out
	report = json.loads(out[out.index("{") :])
	assert set(report) >= {
		"site",
		"time",
		"outbox_backlog",
		"oldest_pending_outbound_seconds",
		"oldest_pending_inbound_seconds",
		"counts",
		"consumer_lag",
		"max_age_seconds",
		"problems",
	}
	assert report["problems"] == [] and report["consumer_lag"] is None

	topic = unique("stuck")
	old = frappe.utils.now_datetime() - datetime.timedelta(days=400)
	frappe.db.sql(
		INSERT_SQL,
		{
			"now": old,
			"user": "Administrator",
			"message_id": unique("m"),
			"doctype": "ToDo",
			"docname": "x",
			"event": "on_update",
			"topic": topic,
			"key": "ToDo:x",
			"origin_site": "s",
			"message": "{}",
			"correlation_id": None,
			"trace_parent": None,
		},
	)
	frappe.db.commit()
	try:
		code, out = status("--json", "--no-lag", "--max-age", YEAR)
		assert code == 1, out
		stuck = json.loads(out[out.index("{") :])
		assert stuck["outbox_backlog"] == report["outbox_backlog"] + 1
		assert stuck["oldest_pending_outbound_seconds"] > 365 * 24 * 3600
		assert "outbound events wait to be published" in stuck["problems"][0]
		code, text = status("--no-lag", "--max-age", YEAR)
		assert code == 1 and "status: STUCK" in text and "outbox backlog" in text
	finally:
		frappe.db.delete("Message Log", {"topic": topic})
		frappe.db.commit()
