"""End to end through the real Procfile processes (spine-relay, eventdispatcher, jsonworker):
save → handler latency with the time of each hop, the first message on a topic the dispatcher
did not know, and a 10,000-document import committed in one transaction.

One site plays both ends (Spine Consumer Config handles this site's own messages), so the
figures include every hop a message between two sites takes, on one machine:
    SPINE_BENCH=/path/to/frappe-bench SPINE_SITE=test.local benchmarks/run.sh pipeline
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from common import (
	connect_site,
	count_log,
	last_log_name,
	procfile_pipeline,
	summary,
	wait_until,
	write_results,
)

DEMO = "spine.demo"


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--samples", type=int, default=60, help="saves timed one at a time")
	parser.add_argument("--import-docs", type=int, default=10_000)
	parser.add_argument("--workers", type=int, default=2)
	parser.add_argument("--out", default="benchmarks/results/pipeline.json")
	args = parser.parse_args()
	out = str((Path.cwd() / args.out).resolve())

	frappe = connect_site()
	from frappe.utils import now_datetime

	from spine import compat
	from spine.demo import CALLS_KEY

	cache = compat.cache()
	run = uuid.uuid4().hex[:6]
	topic, new_topic, import_topic = f"bench-e2e-{run}", f"bench-new-{run}", f"bench-import-{run}"

	def handled_at(message_id: str) -> float | None:
		for entry in cache.lrange(CALLS_KEY, 0, -1):
			mid, when = entry.decode().split()
			if mid == message_id:
				return float(when)
		return None

	def outbound(name: str, topic_: str):
		frappe.db.rollback()
		return frappe.db.get_value(
			"Message Log", {"direction": "Outbound", "document_name": name, "topic": topic_},
			["message_id", "done_at"], as_dict=True,
		)  # fmt: skip

	def inbound(message_id: str):
		frappe.db.rollback()
		return frappe.db.get_value(
			"Message Log",
			{"direction": "Inbound", "message_id": message_id},
			["creation", "done_at"],
			as_dict=True,
		)

	def save_todo(description: str, topic_: str) -> tuple[str, float, object]:
		todo = frappe.get_doc({"doctype": "ToDo", "description": description}).insert()
		frappe.db.commit()
		return todo.name, time.time(), now_datetime()

	def one_sample(topic_: str, label: str, timeout: float = 30) -> dict:
		name, committed, committed_dt = save_todo(f"bench {label}", topic_)
		row = wait_until(lambda: outbound(name, topic_), 10, "the outbox row")
		when = wait_until(lambda: handled_at(row.message_id), timeout, f"the handler call for {name}", 0.002)
		frappe.db.rollback()
		out_row, in_row = outbound(name, topic_), inbound(row.message_id)

		def ms(dt) -> float | None:
			return (dt - committed_dt).total_seconds() * 1000 if dt else None

		return {
			"total_ms": (when - committed) * 1000,
			"published_ms": ms(out_row.done_at),
			"stored_ms": ms(in_row.creation) if in_row else None,
			"handled_ms": ms(in_row.done_at) if in_row else None,
		}

	producer_rows = [
		{"document_type": "ToDo", "topic": topic, "on_update": 1},
	]
	consumer_rows = [
		{"topic": topic, "document_type": "ToDo", "event_handler": f"{DEMO}.record_call"},
		{"topic": import_topic, "document_type": "ToDo", "event_handler": f"{DEMO}.noop"},
	]
	try:
		with procfile_pipeline(
			frappe, run, producer_rows, consumer_rows, [topic, import_topic], args.workers
		):
			cache.delete_value(CALLS_KEY)
			for i in range(5):  # warm-up: first producer connection, first metadata, first jobs
				one_sample(topic, f"warm {i}")
			samples = []
			for i in range(args.samples):
				samples.append(one_sample(topic, f"sample {i}"))
				time.sleep(0.2)  # an idle pipeline between saves

			# a topic nobody knew: a new config row on both sides, the topic created by the first publish
			doc = frappe.get_single("Spine Producer Config")
			doc.append("configs", {"document_type": "ToDo", "topic": new_topic, "on_update": 1})
			doc.save(ignore_permissions=True)
			doc = frappe.get_single("Spine Consumer Config")
			doc.append(
				"configs",
				{"topic": new_topic, "document_type": "ToDo", "event_handler": f"{DEMO}.record_call"},
			)
			doc.save(ignore_permissions=True)
			frappe.db.commit()
			new_topic_sample = one_sample(new_topic, "new topic", timeout=120)
			doc = frappe.get_single("Spine Producer Config")
			doc.set("configs", [{"document_type": "ToDo", "topic": import_topic, "on_update": 1}])
			doc.save(ignore_permissions=True)
			frappe.db.commit()

			# a data import: N inserts, one commit
			after = last_log_name(frappe)
			started = time.perf_counter()
			for i in range(args.import_docs):
				frappe.get_doc({"doctype": "ToDo", "description": f"bench import {run} {i}"}).insert()
			insert_seconds = time.perf_counter() - started
			frappe.db.commit()
			committed = time.perf_counter()

			def count(direction: str, status: str | None = None) -> int:
				return count_log(
					frappe,
					after,
					direction=direction,
					topic=import_topic,
					**({"status": status} if status else {}),
				)

			marks: dict[str, float] = {}
			n = args.import_docs
			while len(marks) < 3 and time.perf_counter() - committed < 600:
				for key, done in (
					("published", lambda: count("Outbound", "Published") >= n),
					("stored", lambda: count("Inbound") >= n),
					("handled", lambda: count("Inbound", "Processed") >= n),
				):
					if key not in marks and done():
						marks[key] = time.perf_counter() - committed
				time.sleep(0.1)
			frappe.db.delete("ToDo", {"description": ("like", f"bench import {run} %")})
			frappe.db.commit()
	finally:
		frappe.destroy()

	totals = summary([s["total_ms"] for s in samples])
	hops = {
		key: summary([s[key] for s in samples if s[key] is not None])
		for key in ("published_ms", "stored_ms", "handled_ms")
	}
	rows = [
		("save → handler, median (ms)", f"{totals['median']:.1f}"),
		("save → handler, p95 (ms)", f"{totals['p95']:.1f}"),
		("  of which commit → published (median ms)", f"{hops['published_ms']['median']:.1f}"),
		("  commit → stored in Message Log (median ms)", f"{hops['stored_ms']['median']:.1f}"),
		("  commit → handled and committed (median ms)", f"{hops['handled_ms']['median']:.1f}"),
		("first message on a new topic and config rows (s)", f"{new_topic_sample['total_ms'] / 1000:.2f}"),
		(
			f"import of {args.import_docs:,} documents in one transaction: inserts (s)",
			f"{insert_seconds:.1f}",
		),
		("  after the commit: all published (s)", f"{marks.get('published', float('nan')):.1f}"),
		("  after the commit: all stored (s)", f"{marks.get('stored', float('nan')):.1f}"),
		("  after the commit: all handled (s)", f"{marks.get('handled', float('nan')):.1f}"),
	]
	write_results(
		out,
		"Spine pipeline (spine-relay, eventdispatcher, jsonworker)",
		rows,
		{
			"save_to_handler_ms": totals,
			"hops_ms": hops,
			"samples": samples,
			"new_topic_seconds": new_topic_sample["total_ms"] / 1000,
			"import": {
				"documents": args.import_docs,
				"insert_seconds": insert_seconds,
				"after_commit_seconds": marks,
			},
			"workers": args.workers,
		},
	)


if __name__ == "__main__":
	main()
