"""Metrics on versus off, through the Procfile processes: save → handler latency (idle pipeline)
and ingest (Kafka → Message Log) of preloaded messages. Each round runs both, in alternating
order, so drift on a shared machine and the second run's handicap hit both alike; the goal is
"within 5 %".

    SPINE_BENCH=/path/to/frappe-bench SPINE_SITE=test.local benchmarks/run.sh metrics
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from pathlib import Path

from common import connect_site, count_log, last_log_name, procfile_pipeline, wait_until, write_results
from consumer_bench import produce

DEMO = "spine.demo"


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--samples", type=int, default=40, help="saves timed one at a time, per round")
	parser.add_argument("--messages", type=int, default=5000, help="messages ingested per round")
	parser.add_argument("--rounds", type=int, default=4, help="rounds: (off, on), then (on, off), and so on")
	parser.add_argument("--workers", type=int, default=2)
	parser.add_argument("--out", default="benchmarks/results/metrics.json")
	args = parser.parse_args()
	out = str((Path.cwd() / args.out).resolve())
	frappe = connect_site()
	from spine import compat
	from spine.demo import CALLS_KEY

	cache = compat.cache()

	def handled_at(message_id: str) -> float | None:
		for entry in cache.lrange(CALLS_KEY, 0, -1):
			mid, when = entry.decode().split()
			if mid == message_id:
				return float(when)
		return None

	def outbound_id(name: str, topic: str) -> str | None:
		frappe.db.rollback()
		return frappe.db.get_value("Message Log", {"direction": "Outbound", "document_name": name, "topic": topic},
			"message_id")  # fmt: skip

	def one_sample(topic: str) -> float:
		todo = frappe.get_doc({"doctype": "ToDo", "description": f"bench metrics {topic}"}).insert()
		frappe.db.commit()
		committed = time.time()
		mid = wait_until(lambda: outbound_id(todo.name, topic), 10, "the outbox row")
		return (wait_until(lambda: handled_at(mid), 30, "the handler call", 0.002) - committed) * 1000

	runs: dict[str, dict[str, list[float]]] = {
		m: {"latency_ms": [], "ingest_per_second": []} for m in ("off", "on")
	}
	try:
		for i in range(args.rounds):
			# the second run of a round is slower whatever it is (MariaDB still cleaning up after the
			# first): the order alternates, so that cost falls on both alike
			for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
				run = uuid.uuid4().hex[:6]
				topic, ingest = f"bench-m-{run}", f"bench-mi-{run}"
				producer = [{"document_type": "ToDo", "topic": topic, "on_update": 1}]
				consumer = [
					{"topic": topic, "document_type": "ToDo", "event_handler": f"{DEMO}.record_call"},
					{"topic": ingest, "document_type": "Item", "event_handler": f"{DEMO}.noop"},
				]
				with procfile_pipeline(frappe, run, producer, consumer, [topic, ingest], args.workers,
						metrics=mode == "on") as (bootstrap, _procs):  # fmt: skip
					cache.delete_value(CALLS_KEY)
					for _ in range(3):  # warm-up
						one_sample(topic)
					for _ in range(args.samples):
						runs[mode]["latency_ms"].append(one_sample(topic))
						time.sleep(0.2)
					after = last_log_name(frappe)
					produce(bootstrap, ingest, args.messages)
					first = wait_until(
						lambda: count_log(frappe, after, topic=ingest), 60, "the first stored message"
					)
					started = time.perf_counter()
					wait_until(
						lambda: count_log(frappe, after, topic=ingest) >= args.messages,
						300,
						"all stored",
						0.1,
					)
					runs[mode]["ingest_per_second"].append(
						(args.messages - first) / (time.perf_counter() - started)
					)
				frappe.db.delete("ToDo", {"description": ("like", "bench metrics %")})
				frappe.db.commit()
	finally:
		frappe.destroy()

	data = {
		mode: {
			"save_to_handler_median_ms": statistics.median(v["latency_ms"]),
			"ingest_messages_per_second_median": statistics.median(v["ingest_per_second"]),
			"ingest_messages_per_second_runs": v["ingest_per_second"],
		}
		for mode, v in runs.items()
	}
	data["latency_on_vs_off"] = (
		data["on"]["save_to_handler_median_ms"] / data["off"]["save_to_handler_median_ms"]
	)
	data["ingest_on_vs_off"] = (
		data["on"]["ingest_messages_per_second_median"] / data["off"]["ingest_messages_per_second_median"]
	)
	rows = [
		("save → handler median, metrics off / on (ms)",
			f"{data['off']['save_to_handler_median_ms']:.1f} / {data['on']['save_to_handler_median_ms']:.1f} "
			f"(on ÷ off {data['latency_on_vs_off']:.3f})"),
		("ingest, metrics off / on (msg/s, median of rounds)",
			f"{data['off']['ingest_messages_per_second_median']:,.0f} / {data['on']['ingest_messages_per_second_median']:,.0f} "
			f"(on ÷ off {data['ingest_on_vs_off']:.3f})"),
	]  # fmt: skip
	write_results(out, "Spine with Prometheus metrics on and off", rows, data)


if __name__ == "__main__":
	main()
