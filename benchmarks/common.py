"""Shared plumbing for Spine's benchmarks: the site, a local broker, tables and JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
	sys.path.insert(0, str(ROOT))


def connect_site():
	"""frappe.init + connect on SPINE_SITE in SPINE_BENCH (exits with a message if unset)."""
	bench, site = os.environ.get("SPINE_BENCH"), os.environ.get("SPINE_SITE")
	if not bench or not site:
		sys.exit(
			"set SPINE_BENCH=/path/to/frappe-bench and SPINE_SITE=<site> (a test site: benchmarks commit data)"
		)
	import frappe

	sites = os.path.join(bench, "sites")
	os.chdir(sites)
	frappe.init(site=site, sites_path=sites)
	frappe.connect()
	frappe.set_user("Administrator")
	return frappe


@contextmanager
def local_broker():
	from spine.kafka.devbroker import LocalBroker

	broker = LocalBroker.start()
	try:
		yield broker.bootstrap_servers
	finally:
		broker.stop()


@contextmanager
def site_kafka(bootstrap: str, **extra):
	import frappe
	from frappe.installer import update_site_config

	before = frappe.get_site_config().get("kafka")
	conf = {"bootstrap.servers": bootstrap, "client.id": f"bench-{frappe.local.site}", **extra}
	update_site_config("kafka", conf)
	frappe.local.conf.kafka = conf
	try:
		yield
	finally:
		update_site_config("kafka", before if before is not None else "None")
		frappe.local.conf.kafka = before


def percentile(values: list[float], p: float) -> float:
	ordered = sorted(values)
	k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
	return ordered[k]


def summary(values: list[float]) -> dict:
	return {
		"n": len(values),
		"median": statistics.median(values),
		"p90": percentile(values, 90),
		"p99": percentile(values, 99),
		"min": min(values),
	}


def write_results(path: str, name: str, rows: list[tuple[str, str]], data: dict) -> None:
	"""Print a two-column table and write ``data`` (plus machine facts) as JSON to ``path``."""
	width = max(len(r[0]) for r in rows)
	print(f"\n{name}")
	print(f"{'measure'.ljust(width)} | value")
	print(f"{'-' * width}-|-{'-' * 30}")
	for label, value in rows:
		print(f"{label.ljust(width)} | {value}")
	out = Path(path)
	out.parent.mkdir(parents=True, exist_ok=True)
	payload = {
		"benchmark": name,
		"when": time.strftime("%Y-%m-%dT%H:%M:%S"),
		"machine": {
			"cpus": os.cpu_count(),
			"python": platform.python_version(),
			"platform": platform.platform(),
		},
		**data,
	}
	out.write_text(json.dumps(payload, indent=2, default=str))
	print(f"\nwritten: {out}")
