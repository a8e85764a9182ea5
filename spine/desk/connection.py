"""The config forms' "Check connection" action: broker reachable with the site's settings? topics there?"""

from __future__ import annotations

from typing import Any

import frappe

from spine.errors import KafkaConfigError
from spine.settings import broker

CONFIGS = ("Spine Producer Config", "Spine Consumer Config")


@frappe.whitelist()
def check_connection(config: str) -> dict[str, Any]:
	"""Report for the saved rows of ``config``: ``{"ok", "brokers", "error", "topics": [...]}``."""
	frappe.only_for("System Manager")
	from spine.kafka.admin import check

	admin, topics = _admin_and_topics(config)
	if admin is None:
		return {"ok": False, "brokers": 0, "error": topics, "topics": []}
	return check(admin, topics)


@frappe.whitelist()
def show_connection(config: str) -> dict[str, Any]:
	"""Desk button: the report as a dialog, offering to create missing topics."""
	report = check_connection(config)
	esc = frappe.utils.escape_html
	rows = (
		"".join(
			f"<tr><td>{esc(t['topic'])}</td><td>"
			+ (
				"unknown"
				if t["exists"] is None
				else f"exists ({_count(t['partitions'], 'partition')})"
				if t["exists"]
				else "missing"
			)
			+ "</td></tr>"
			for t in report["topics"]
		)
		or "<tr><td colspan='2'>no enabled row names a topic yet</td></tr>"
	)
	where = esc(broker.describe())
	head = (
		f"The broker at {where} answers ({_count(report['brokers'], 'broker')} in the cluster)."
		if report["ok"]
		else f"The broker at {where} does not answer: {esc(report['error'] or '')}"
	)
	missing = [t["topic"] for t in report["topics"] if t["exists"] is False]
	frappe.msgprint(
		f"<p>{head}</p><table class='table table-bordered'><tr><th>Topic</th><th>State</th></tr>{rows}</table>",
		title="Kafka connection",
		indicator="green" if report["ok"] else "red",
		primary_action={
			"label": f"Create {_count(len(missing), 'missing topic')}",
			"server_action": "spine.desk.connection.create_missing_topics",
			"args": {"config": config},
		}
		if report["ok"] and missing
		else None,
	)
	return report


def _count(n: int | None, noun: str) -> str:
	"""``1 partition``, ``3 partitions``."""
	return f"{n} {noun}{'' if n == 1 else 's'}"


@frappe.whitelist()
def create_missing_topics(
	config: str, partitions: int | None = None, replication: int | None = None
) -> dict[str, str | None]:
	"""Create the topics of ``config`` that do not exist, with the partitions and replication given, else
	the kafka block's ``spine.topic.*`` (the cluster's defaults unless set); ``{topic: None or error}``."""
	frappe.only_for("System Manager")
	from spine.kafka.admin import check, create_topics

	admin, topics = _admin_and_topics(config)
	if admin is None:
		frappe.throw(topics)
	missing = [t["topic"] for t in check(admin, topics)["topics"] if t["exists"] is False]
	layout = broker.topic_layout()
	partitions = int(partitions) if partitions else layout["partitions"]
	replication = int(replication) if replication else layout["replication"]
	result = create_topics(admin, missing, partitions, replication) if missing else {}
	if result:
		frappe.msgprint(
			"<br>".join(f"{t}: {'created' if err is None else err}" for t, err in result.items()),
			title="Topics",
			indicator="green" if all(e is None for e in result.values()) else "red",
		)
	return result


def _admin_and_topics(config: str) -> tuple[dict | None, Any]:
	if config not in CONFIGS:
		frappe.throw(f"config must be one of {', '.join(CONFIGS)}")
	try:
		settings = broker.site_settings()
	except KafkaConfigError as e:
		return None, str(e)
	topics = sorted({r.topic.strip() for r in frappe.get_single(config).configs if r.topic and r.enabled})
	return settings.admin, topics
