"""What ``bench --site S spine-status`` reports: backlog, counts by status, oldest pending age, lag.

``collect`` returns plain data (the ``--json`` output, documented in the README); ``problems``
lists what makes the health check fail.
"""

from __future__ import annotations

from typing import Any

import frappe
from frappe.utils import now_datetime

from spine.consumer import offsets
from spine.kafka import broker_errors
from spine.settings import broker, config_cache

DEFAULT_MAX_AGE_SECONDS = 600


def collect(max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS, with_lag: bool = True) -> dict[str, Any]:
	"""A snapshot of Spine on this site; ``problems`` is empty when nothing is stuck."""
	now = now_datetime()
	counts: dict[str, dict[str, int]] = {"Inbound": {}, "Outbound": {}}
	for direction, status, n in frappe.db.sql(
		"SELECT direction, status, COUNT(*) FROM `tabMessage Log` GROUP BY direction, status"
	):
		counts.setdefault(direction, {})[status] = n

	def oldest(direction: str, statuses: tuple[str, ...]) -> float | None:
		created = frappe.db.sql(
			f"""SELECT MIN(creation) FROM `tabMessage Log` WHERE direction = %s
			AND status IN ({", ".join(["%s"] * len(statuses))})""",
			(direction, *statuses),
		)[0][0]
		return round((now - created).total_seconds(), 1) if created else None

	report: dict[str, Any] = {
		"site": frappe.local.site,
		"time": str(now),
		"outbox_backlog": counts["Outbound"].get("Pending", 0),
		"oldest_pending_outbound_seconds": oldest("Outbound", ("Pending",)),
		"oldest_pending_inbound_seconds": oldest("Inbound", ("Pending", "Waiting", "Error")),
		"counts": counts,
		"consumer_lag": None,
		"max_age_seconds": max_age_seconds,
	}
	report["held_outbound"] = held_outbound()
	report["cluster"] = None
	if with_lag:
		report["consumer_lag"] = consumer_lag()
		report["cluster"] = cluster_state()
	report["problems"] = problems(report)
	return report


def refused(report: dict[str, Any]) -> str | None:
	"""The broker's refusal of this site (a login or a TLS handshake), with what to check: the
	``Error:`` line spine-status ends with; None when it was not refused."""
	error = (report.get("consumer_lag") or {}).get("error") or ""
	hint = broker.refusal_hint(error)
	return f"{error}; {hint}" if hint else None


def held_outbound() -> list[dict[str, Any]]:
	"""Per topic, the Pending outbound rows the broker refused or did not confirm, with the latest
	error: what the relay retries (an authorization error until the ACL is added)."""
	rows = frappe.db.sql(
		"""SELECT topic, COUNT(*) AS n, MAX(modified) AS since,
			SUBSTRING_INDEX(GROUP_CONCAT(last_error ORDER BY modified DESC SEPARATOR '\x1e'), '\x1e', 1) AS error
		FROM `tabMessage Log` WHERE direction = 'Outbound' AND status = 'Pending' AND last_error IS NOT NULL
		GROUP BY topic ORDER BY topic""",
		as_dict=True,
	)
	return [{"topic": r.topic, "rows": r.n, "error": (r.error or "")[:300]} for r in rows]


def cluster_state() -> list[str] | None:
	"""The partitions of this site's topics (published or consumed) that have no leader or replicas
	out of sync; None when the kafka block cannot be used."""
	from spine.errors import KafkaConfigError
	from spine.kafka.admin import cluster_problems

	try:
		settings = broker.site_settings()
	except KafkaConfigError:
		return None
	config_cache.forget_local()
	topics = set(config_cache.consumer_settings()["topics"]) | {
		r["topic"] for rows in config_cache.producer_routes().values() for r in rows
	}
	return cluster_problems({**settings.admin, "socket.timeout.ms": 5000}, topics) if topics else []


def problems(report: dict[str, Any]) -> list[str]:
	"""Human-readable reasons the health check fails; empty when healthy."""
	limit = report["max_age_seconds"]
	found = []
	if (age := report["oldest_pending_outbound_seconds"]) is not None and age > limit:
		found.append(
			f"{report['outbox_backlog']} outbound events wait to be published; the oldest for {age:.0f}s "
			f"(limit {limit}s): is the broker reachable and are `bench worker`/`bench schedule` running?"
		)
	if (age := report["oldest_pending_inbound_seconds"]) is not None and age > limit:
		found.append(
			f"inbound messages wait to be handled; the oldest for {age:.0f}s (limit {limit}s): "
			"are the jsonworkers and `bench schedule` running?"
		)
	lag = report.get("consumer_lag") or {}
	if lag.get("error"):
		found.append(f"consumer lag unknown: {lag['error']}")
	for held in report.get("held_outbound") or []:
		kind = broker_errors.kind_of(held["error"])
		if kind == broker_errors.AUTHORIZATION:
			found.append(
				f"{held['rows']} events to topic {held['topic']} are held: the broker refuses this site's "
				f"principal ({held['error'][:160]}); add the ACL (README, 'Least ACLs'): they go out then"
			)
		elif kind == broker_errors.REGISTRY:
			found.append(
				f"{held['rows']} events to topic {held['topic']} are held by the schema registry: {held['error'][:400]}"
			)
	for state in report.get("cluster") or []:
		if "no leader" in state:
			found.append(f"{state}: nothing can be published to or read from it until a broker leads it")
	return found


def consumer_lag() -> dict[str, Any]:
	"""The consumer group's lag on the topics Spine Consumer Config names now (read afresh)."""
	config_cache.forget_local()
	topics = config_cache.consumer_settings()["topics"]
	raw = frappe.conf.get("kafka")
	if not topics or not raw:
		return {"group": None, "total": 0, "partitions": []}
	from confluent_kafka import KafkaException

	from spine.errors import KafkaConfigError
	from spine.kafka.admin import ConnectionErrors
	from spine.kafka.lag import group_lag

	try:
		settings = broker.site_settings()
	except KafkaConfigError as e:
		return {"group": None, "error": f"the kafka block cannot be used: {e}"[:300]}
	group = settings.consumer["group.id"]
	errors = ConnectionErrors()
	try:
		parts = group_lag(errors.watch({**settings.consumer, "socket.timeout.ms": 5000}), topics, timeout=5)
	except KafkaException as e:
		err = e.args[0] if e.args else e
		why = errors.explain(err, settings.admin)
		return {"group": group, "error": f"Kafka at {settings.bootstrap_servers}: {why}"[:400]}
	stored = offsets.positions(group)
	handed = _handed_over(group)
	return {
		"group": group,
		"total": sum(p.lag for p in parts),
		"partitions": [
			{
				**p.as_dict(),
				"stored_up_to": stored.get((p.topic, p.partition)),
				"handed_over": handed.get(f"{p.topic}:{p.partition}"),
			}
			for p in parts
		],
	}


def _handed_over(group: str) -> dict[str, int]:
	"""How far the dispatchers handed each partition over (kept in the queue's Redis; empty if lost)."""
	from frappe.utils.background_jobs import get_redis_conn

	from spine.kafka.handover import handed_key

	try:
		return {k.decode(): int(v) for k, v in get_redis_conn().hgetall(handed_key(group)).items()}
	except Exception:
		return {}


def render(report: dict[str, Any]) -> str:
	"""The report as text for a terminal."""
	lines = [f"Spine on {report['site']} at {report['time']}"]
	lines.append(
		f"  outbox backlog: {report['outbox_backlog']} pending"
		+ (
			f", oldest {report['oldest_pending_outbound_seconds']:.0f}s"
			if report["oldest_pending_outbound_seconds"]
			else ""
		)
	)
	if report["oldest_pending_inbound_seconds"] is not None:
		lines.append(f"  oldest unhandled inbound message: {report['oldest_pending_inbound_seconds']:.0f}s")
	for direction, by_status in report["counts"].items():
		shown = ", ".join(f"{s} {n}" for s, n in sorted(by_status.items())) or "none"
		lines.append(f"  {direction}: {shown}")
	lag = report.get("consumer_lag")
	if lag:
		if lag.get("error"):
			lines.append(f"  consumer lag: unknown ({lag['error']})")
		else:
			lines.append(f"  consumer group {lag['group']}: lag {lag['total']}")
			for p in lag["partitions"]:
				lines.append(
					f"    {p['topic']}[{p['partition']}]: committed {p['committed']}, stored up to "
					f"{p.get('stored_up_to')}, handed over up to {p.get('handed_over')}, end {p['end']}, lag {p['lag']}"
				)
	for held in report.get("held_outbound") or []:
		lines.append(
			f"  held for topic {held['topic']}: {held['rows']} events, last error: {held['error'][:200]}"
		)
	for state in report.get("cluster") or []:
		lines.append(f"  cluster: {state}")
	lines.append(
		"  status: " + ("STUCK\n  - " + "\n  - ".join(report["problems"]) if report["problems"] else "ok")
	)
	return "\n".join(lines)
