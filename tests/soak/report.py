"""The soak's report: one row per fault kind (how many, the longest pause in handling it caused, and
the problems put down to it), a row for problems while no fault was on, and the totals; as a table
and as JSON."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.soak.check import PROBLEMS, Outcome
from tests.soak.journal import Journal
from tests.soak.schedule import KINDS

SHOWN = ("lost", "duplicated", "out of order", "stuck")  # the table's columns; the rest go to "other"


def summarise(journal: Journal, outcome: Outcome) -> dict[str, Any]:
	"""{"kinds": {kind: row}, "no fault": row, "totals": row, "failed faults": [...], "problems": [...]}."""
	faults = journal.faults
	by_fault = outcome.by_fault(faults)
	rows: dict[str, dict[str, Any]] = {
		kind: {"count": 0, "longest_pause_s": 0.0, **dict.fromkeys(PROBLEMS, 0)} for kind in KINDS
	}
	for i, f in enumerate(faults):
		row = rows[f.kind]
		row["count"] += 1
		row["longest_pause_s"] = round(max(row["longest_pause_s"], outcome.pauses.get(i, 0.0)), 2)
		for p in by_fault.get(i, []):
			row[p.kind] += 1
	quiet = {"count": 0, "longest_pause_s": None, **dict.fromkeys(PROBLEMS, 0)}
	for p in by_fault.get(None, []):
		quiet[p.kind] += 1
	totals = Counter(p.kind for p in outcome.problems)
	return {
		"kinds": rows,
		"no fault": quiet,
		"totals": {k: totals.get(k, 0) for k in PROBLEMS},
		"failed faults": [f"{f.kind} at {f.started:%H:%M:%S}: {f.error}" for f in faults if f.error],
		"problems": [
			{"kind": p.kind, "at": p.at.isoformat() if p.at else None, "detail": p.detail}
			for p in outcome.problems[:200]
		],
		"counts": outcome.counts,
		"sent twice (dropped by the consumer)": outcome.sent_twice,
		"requests": dict(Counter(r.outcome for r in journal.requests)),
		"journal": journal.as_dict(),
	}


def passed(summary: dict[str, Any], min_per_kind: int = 1) -> bool:
	"""No problem of any kind, no fault that could not be done, every kind done ``min_per_kind`` times."""
	return (
		not any(summary["totals"].values())
		and not summary["failed faults"]
		and all(row["count"] >= min_per_kind for row in summary["kinds"].values())
	)


def table(summary: dict[str, Any]) -> str:
	head = ["fault", "times", "longest pause (s)", *SHOWN, "other"]
	lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

	def line(name: str, row: dict[str, Any]) -> str:
		other = sum(row[k] for k in PROBLEMS if k not in SHOWN)
		pause = "—" if row["longest_pause_s"] is None else f"{row['longest_pause_s']:.1f}"
		cells = [name, str(row["count"]), pause, *(str(row[k]) for k in SHOWN), str(other)]
		return "| " + " | ".join(cells) + " |"

	for kind, row in summary["kinds"].items():
		lines.append(line(kind.replace("_", " "), row))
	lines.append(line("(no fault on)", summary["no fault"]))
	totals = {
		"count": sum(r["count"] for r in summary["kinds"].values()),
		"longest_pause_s": None,
		**summary["totals"],
	}
	lines.append(line("**total**", totals))
	return "\n".join(lines)
