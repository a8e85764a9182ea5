"""``bench spine-status`` without ``--site``: one row per site of the bench that has Spine installed,
with what the bench-wide processes say they do with it."""

from __future__ import annotations

import contextvars
from collections.abc import Collection
from typing import Any

import frappe

from spine.benchwide.serve import served_states
from spine.benchwide.sites import scan
from spine.desk import status


def collect(
	only: Collection[str] = (), max_age_seconds: int = status.DEFAULT_MAX_AGE_SECONDS, with_lag: bool = True
) -> dict[str, Any]:
	"""``{"sites": [report, ...], "not_installed": [site, ...], "problems": n}``: each report is
	``status.collect``'s for that site plus ``served`` (process → state, as the bench-wide processes
	published it) and ``problems`` that include a process failing on the site or a database that
	does not answer; ``problems`` counts the sites with any."""
	with frappe.init_site():
		try:
			served = served_states()
		except Exception as e:  # Redis away: the rows still come from each site's database
			served = {"*": {"redis": {"state": "unknown", "reason": str(e)}}}
	reports, not_installed = [], []
	for site, view in scan(".", only).items():
		report = contextvars.Context().run(_site_report, site, max_age_seconds, with_lag)
		if report is None:
			not_installed.append(site)
			continue
		report["served"] = served.get(site, {})
		report["not_served_because"] = view.reason
		for process, state in sorted(report["served"].items()):
			if state["state"] == "failing":
				report["problems"].append(f"{process} cannot serve it: {state['reason']}")
		reports.append(report)
	return {
		"sites": reports,
		"not_installed": not_installed,
		"problems": sum(1 for r in reports if r["problems"]),
	}


def _site_report(site: str, max_age_seconds: int, with_lag: bool) -> dict[str, Any] | None:
	try:
		frappe.init(site=site)
		frappe.connect()
		if "spine" not in frappe.get_installed_apps():
			return None
		return status.collect(max_age_seconds=max_age_seconds, with_lag=with_lag)
	except Exception as e:
		return {
			"site": site,
			"outbox_backlog": None,
			"counts": {},
			"consumer_lag": None,
			"oldest_pending_outbound_seconds": None,
			"oldest_pending_inbound_seconds": None,
			"problems": [f"its database cannot be read ({type(e).__name__}: {e})"[:300]],
		}
	finally:
		frappe.destroy()


def render(bench: dict[str, Any]) -> str:
	"""The bench's report as a table for a terminal, the problems listed under it."""
	header = ("site", "outbox", "inbound", "failed", "lag", "oldest", "processes", "status")
	rows = [header]
	notes = []
	for r in bench["sites"]:
		counts = r.get("counts") or {}
		inbound = sum((counts.get("Inbound") or {}).get(s, 0) for s in ("Pending", "Error", "Waiting"))
		failed = sum((by or {}).get("Failed", 0) for by in counts.values())
		lag = r.get("consumer_lag") or {}
		ages = [
			a
			for a in (r.get("oldest_pending_outbound_seconds"), r.get("oldest_pending_inbound_seconds"))
			if a
		]
		rows.append(
			(
				r["site"],
				_n(r.get("outbox_backlog")),
				_n(inbound if counts else None),
				_n(failed if counts else None),
				"?" if lag.get("error") else _n(lag.get("total")),
				f"{max(ages):.0f}s" if ages else "-",
				_processes(r),
				"STUCK" if r["problems"] else "ok",
			)
		)
		notes += [f"{r['site']}: {p}" for p in r["problems"]]
		if r.get("not_served_because") and not r["problems"]:
			notes.append(f"{r['site']}: not served: {r['not_served_because']}")
	widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
	lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
	if bench["not_installed"]:
		lines.append(f"(Spine not installed on: {', '.join(bench['not_installed'])})")
	return "\n".join(lines + [f"- {n}" for n in notes])


def _n(value: Any) -> str:
	return "?" if value is None else str(value)


def _processes(report: dict[str, Any]) -> str:
	served = report.get("served") or {}
	if not served:
		return "none running"
	by_state: dict[str, list[str]] = {}
	for process, state in served.items():
		by_state.setdefault(state["state"], []).append(process)
	return "; ".join(f"{state}: {len(procs)}" for state, procs in sorted(by_state.items()))
