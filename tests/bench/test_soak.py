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
	"""Run as its own process (``python -m tests.soak``, as an operator runs it): what a soak does to a
	process's state (its site contexts, clients of the broker it stopped) stays out of this session."""
	import json
	import subprocess
	import sys

	import frappe

	from tests.soak import report

	out = os.path.join(tempfile.gettempdir(), f"spine-soak-{SEED}.json")
	if os.path.exists(out):
		os.unlink(out)
	frappe.db.commit()
	# this session's connection is spared the KILLs: the modules after this one use it
	own = frappe.db.sql("SELECT CONNECTION_ID()")[0][0]
	root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
	done = subprocess.run(
		[sys.executable, "-m", "tests.soak", "--seed", str(SEED), "--minutes", "5", "--out", out, "--spare", str(own)],
		cwd=root, timeout=30 * 60,
	)  # fmt: skip
	assert os.path.exists(out), f"the soak wrote no report (exit {done.returncode}); its output is above"
	with open(out) as f:
		summary = json.load(f)
	problems = "\n".join(f"{p['kind']}: {p['detail']}" for p in summary["problems"][:40])
	assert summary["passed"] and done.returncode == 0, (
		f"seed {SEED} (replay: SPINE_SOAK_SEED={SEED}, or benchmarks/run.sh soak --seed {SEED} --minutes 5)\n"
		f"{report.table(summary)}\nfailed faults: {summary['failed faults']}\n{problems}\n"
		f"{summary.get('process logs', '')[-6000:]}"
	)
	counts = summary["counts"]
	assert counts["a handled"] > 100 and counts["b handled"] > 100, counts
