"""``python -m tests.soak --seed N --minutes M [--nodes 1|3] [--out FILE] [--spare ID]``: one soak (see run.py)."""

from __future__ import annotations

import argparse
import os
import random
import sys


def main() -> int:
	parser = argparse.ArgumentParser(prog="benchmarks/run.sh soak", description=__doc__)
	parser.add_argument(
		"--seed", type=int, default=None, help="the schedule's seed (default: a random one, printed)"
	)
	parser.add_argument("--minutes", type=float, default=60.0, help="how long traffic flows (default 60)")
	parser.add_argument("--nodes", type=int, default=1, choices=(1, 3), help="Kafka brokers (3: a cluster)")
	parser.add_argument(
		"--out", default=None, help="the JSON report (default benchmarks/results/soak-<seed>.json)"
	)
	parser.add_argument("--spare", type=int, action="append", default=[],
		help="a database connection id not to KILL (the caller's own; may be given again)")  # fmt: skip
	args = parser.parse_args()
	if not os.environ.get("SPINE_BENCH") or not os.environ.get("SPINE_SITE"):
		parser.error(
			"set SPINE_BENCH, SPINE_SITE and SPINE_SITE2 (two sites of a bench with Spine installed)"
		)
	seed = args.seed if args.seed is not None else random.randrange(1, 1 << 31)
	out = args.out or os.path.join(
		os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchmarks", "results",
		f"soak-{seed}{'-cluster' if args.nodes > 1 else ''}.json",
	)  # fmt: skip
	os.makedirs(os.path.dirname(out), exist_ok=True)
	from tests.soak.run import soak

	summary = soak(seed, args.minutes, nodes=args.nodes, out=os.path.abspath(out), spare=args.spare)
	return 0 if summary["passed"] else 1


def again(path: str) -> int:
	"""The end check and report of a finished soak, from what it gathered (no bench needed)."""
	import pickle

	from tests.soak import check, report
	from tests.soak.journal import Journal

	journal = Journal()
	with open(path, "rb") as f:
		journal.txns, journal.configs, journal.faults, journal.requests, facts = pickle.load(f)
	summary = report.summarise(journal, check.evaluate(journal, facts))
	print(report.table(summary))
	for p in summary["problems"][:40]:
		print(f"{p['kind']}: {p['at']} {p['detail']}")
	return 0 if report.passed(summary) else 1


if __name__ == "__main__":
	sys.exit(main())
