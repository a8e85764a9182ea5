"""A five-minute soak (tests/soak): traffic both ways between two sites with Spine's bench-wide
processes, every outage kind once (processes, broker and queue Redis SIGKILLed, database connections
KILLed, a site out of service) and config saved while messages flow; nothing lost, nothing handled
twice, nothing out of order, nothing stuck. ``benchmarks/run.sh soak --minutes 60`` is the long one."""

from __future__ import annotations

import os
import tempfile

import pytest

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("SPINE_SOAK_SEED", "20261207"))


def test_a_five_minute_soak_keeps_every_guarantee(frappe_site, second_site):
	import frappe

	from tests.soak import report
	from tests.soak.run import soak

	out = os.path.join(tempfile.gettempdir(), f"spine-soak-{SEED}.json")
	home = frappe.local.site
	frappe.db.commit()
	# this session's connection is spared the KILLs: the modules after this one use it
	own = frappe.db.sql("SELECT CONNECTION_ID()")[0][0]
	try:
		summary = soak(SEED, 5, out=out, spare={own})
	finally:  # the soak works in contexts of its own; this process's site stays connected
		frappe.local.site == home or pytest.fail("the soak changed this process's site")
	problems = "\n".join(f"{p['kind']}: {p['detail']}" for p in summary["problems"][:40])
	assert summary["passed"], (
		f"seed {SEED} (replay: SPINE_SOAK_SEED={SEED}, or benchmarks/run.sh soak --seed {SEED} --minutes 5)\n"
		f"{report.table(summary)}\nfailed faults: {summary['failed faults']}\n{problems}\n"
		f"{summary.get('process logs', '')[-6000:]}"
	)
	counts = summary["counts"]
	assert counts["a handled"] > 100 and counts["b handled"] > 100, counts
