"""Numbers and charts of the Spine workspace (Number Cards of type Custom, Dashboard Chart Sources)."""

from __future__ import annotations

import datetime
from typing import Any

import frappe
from frappe.utils import now_datetime

# Every status always gets its dataset, in this order, so each keeps one colour (the chart's
# custom_options list the colours in the same order): Failed is always red, Processed green.
STATUSES = ("Pending", "Published", "Processed", "Waiting", "Error", "Failed", "Skipped", "Invalid")


@frappe.whitelist()
def processed_last_hour(filters: Any = None) -> dict[str, Any]:
	"""Inbound entries that reached Processed in the last hour."""
	frappe.only_for("System Manager")
	since = now_datetime() - datetime.timedelta(hours=1)
	value = frappe.db.count(
		"Message Log", {"direction": "Inbound", "status": "Processed", "done_at": (">=", since)}
	)
	return {
		"value": value,
		"fieldtype": "Int",
		"route": ["List", "Message Log"],
		"route_options": {"status": "Processed"},
	}


@frappe.whitelist()
def oldest_pending_minutes(filters: Any = None) -> dict[str, Any]:
	"""Age in minutes of the oldest entry still waiting (Pending outbound, Pending or Error inbound)."""
	frappe.only_for("System Manager")
	oldest = frappe.db.sql(
		"""SELECT MIN(creation) FROM `tabMessage Log` WHERE (direction = 'Outbound' AND status = 'Pending')
		OR (direction = 'Inbound' AND status IN ('Pending', 'Waiting', 'Error'))"""
	)[0][0]
	minutes = int((now_datetime() - oldest).total_seconds() // 60) if oldest else 0
	return {"value": minutes, "fieldtype": "Int"}


@frappe.whitelist()
def consumer_lag_total(filters: Any = None) -> dict[str, Any] | str:
	"""Messages on the configured topics the consumer group has not committed yet; when the broker
	cannot be asked, a short "unknown: why" instead of a number that would look real."""
	frappe.only_for("System Manager")
	from spine.desk.status import consumer_lag

	lag = consumer_lag()
	if lag.get("error"):
		error = lag["error"]
		return "unknown: " + (
			"login refused" if "refused the login" in error
			else "TLS handshake failed" if "TLS handshake" in error
			else "broker unreachable" if "did not answer" in error
			else "bad kafka block"
		)  # fmt: skip
	return {"value": lag.get("total", 0), "fieldtype": "Int"}


@frappe.whitelist()
def messages_per_hour(chart_name: str | None = None, filters: Any = None, **_: Any) -> dict[str, Any]:
	"""Entries created per hour over the last 24 hours, one dataset per status."""
	frappe.only_for("System Manager")
	now = now_datetime().replace(minute=0, second=0, microsecond=0)
	hours = [now - datetime.timedelta(hours=h) for h in range(23, -1, -1)]
	rows = frappe.db.sql(
		"""SELECT DATE_FORMAT(creation, '%%Y-%%m-%%d %%H:00:00') AS hour, status, COUNT(*) FROM `tabMessage Log`
		WHERE creation >= %s GROUP BY hour, status""",
		(hours[0],),
	)
	counts = {(str(h), s): n for h, s, n in rows}
	keys = [h.strftime("%Y-%m-%d %H:00:00") for h in hours]
	return {
		"labels": [h.strftime("%H:00") for h in hours],
		"datasets": [
			{"name": status, "values": [counts.get((k, status), 0) for k in keys]} for status in STATUSES
		],
	}


@frappe.whitelist()
def consumer_lag_by_partition(chart_name: str | None = None, filters: Any = None, **_: Any) -> dict[str, Any]:
	"""Consumer lag per topic and partition; a partition without a leader or with replicas out of sync
	says so in its label."""
	frappe.only_for("System Manager")
	from spine.desk.status import consumer_lag

	lag = consumer_lag()
	parts = lag.get("partitions") or []
	if not parts:
		return {}  # Desk shows "No Data" rather than an empty axis
	return {
		"labels": [f"{p['topic']}[{p['partition']}]" + _health(p) for p in parts],
		"datasets": [{"name": "Lag", "values": [p["lag"] for p in parts]}],
	}


def _health(partition: dict[str, Any]) -> str:
	"""`` (no leader)`` / `` (2 of 3 replicas in sync)`` after a partition's label, where the cluster
	says so."""
	if partition.get("leader", 0) < 0:
		return " (no leader)"
	if partition.get("in_sync", 0) < partition.get("replicas", 0):
		return f" ({partition['in_sync']} of {partition['replicas']} replicas in sync)"
	return ""
