"""Consumer benchmark: ingest (Kafka → Message Log), processing with per-message and batch handlers,
and the memory of eventdispatcher and jsonworker over a long run.

Starts a local broker and the real ``eventdispatcher`` and ``jsonworker`` processes on a test
site (it commits Message Log rows):
    SPINE_BENCH=/path/to/frappe-bench SPINE_SITE=test.local benchmarks/run.sh consumer
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from common import (
	configs,
	connect_site,
	count_log,
	last_log_name,
	local_broker,
	site_kafka,
	start_process,
	stop_process,
	tree_rss_kb,
	wait_until,
	write_results,
)

from spine import envelope

DEMO = "spine.demo"


def produce(bootstrap: str, topic: str, count: int, docs: int = 500) -> None:
	"""``count`` Spine messages from a pretend remote site, ``docs`` documents round robin."""
	from confluent_kafka import Producer

	producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20})
	for i in range(count):
		env = envelope.build(doctype="Item", docname=f"B-{i % docs}", event="on_update", topic=topic,
			payload={"name": f"B-{i % docs}", "i": i}, origin="bench", origin_site="bench.remote")  # fmt: skip
		while True:
			try:
				producer.produce(topic, envelope.encode(env), key=env.key, headers=env.headers())
				break
			except BufferError:
				producer.poll(0.05)
		producer.poll(0)
	assert producer.flush(120) == 0


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--messages", type=int, default=5000, help="messages for ingest and processing")
	parser.add_argument("--batch-messages", type=int, default=20_000, help="messages for the batch handler")
	parser.add_argument("--memory-messages", type=int, default=100_000, help="0 skips the memory run")
	parser.add_argument("--workers", type=int, default=2)
	parser.add_argument("--out", default="benchmarks/results/consumer.json")
	args = parser.parse_args()
	out = str((Path.cwd() / args.out).resolve())

	frappe = connect_site()
	from confluent_kafka.admin import AdminClient, NewTopic

	from spine.consumer import intake, processor

	run = uuid.uuid4().hex[:6]
	topic, batch_topic, memory_topic, direct_topic = (
		f"bench-{k}-{run}" for k in ("in", "batch", "mem", "direct")
	)
	procs: list = []

	after = last_log_name(frappe)

	def count(topic_: str, status: str | None = None) -> int:
		return count_log(
			frappe, after, direction="Inbound", topic=topic_, **({"status": status} if status else {})
		)

	def run_through(topic_: str, n: int, sample_rss: bool = False) -> dict:
		"""Wait until ``n`` messages of ``topic_`` are Processed; times from the first sample that saw a
		stored row, and counts what was stored and processed at that sample (``before``): rates count
		only the rows that came after it, so the first job's rows are not taken as costing no time."""
		t0 = time.perf_counter()
		first = all_stored = None
		before = {"stored": 0, "processed": 0}
		rss: list[tuple[int, int, int]] = []  # (stored, dispatcher KiB, jsonworker KiB)
		while time.perf_counter() - t0 < 1200:
			stored, processed = count(topic_), count(topic_, "Processed")
			now = time.perf_counter()
			if stored and first is None:
				first, before = now, {"stored": stored, "processed": processed}
			if stored >= n and all_stored is None:
				all_stored = now
			if sample_rss:
				rss.append((stored, tree_rss_kb(procs[1].pid), tree_rss_kb(procs[0].pid)))
			if processed >= n:  # (stored was counted just before: it may have reached n meanwhile)
				return {"first": first, "stored": all_stored or now, "processed": now, "rss": rss,
					"stored_at_first": before["stored"], "processed_at_first": before["processed"]}  # fmt: skip
			time.sleep(0.25 if sample_rss else 0.1)
		raise SystemExit(f"only {count(topic_, 'Processed')} of {n} messages of {topic_} processed in time")

	rows_cfg = [
		{"topic": topic, "document_type": "Item", "event_handler": f"{DEMO}.noop"},
		{
			"topic": batch_topic,
			"document_type": "Item",
			"event_handler": f"{DEMO}.noop_batch",
			"batch_handler": 1,
		},
		{"topic": memory_topic, "document_type": "Item", "event_handler": f"{DEMO}.noop"},
		{
			"topic": direct_topic,
			"document_type": "Item",
			"event_handler": f"{DEMO}.noop_batch",
			"batch_handler": 1,
		},
	]
	results: dict = {"messages": args.messages, "workers": args.workers}
	try:
		with (
			local_broker() as bootstrap,
			site_kafka(bootstrap, **{"group.id": f"bench-{run}"}),
			configs(frappe, consumer=rows_cfg),
		):
			admin = AdminClient({"bootstrap.servers": bootstrap})
			new = [NewTopic(t, 3) for t in (topic, batch_topic, memory_topic)]
			for f in admin.create_topics(new).values():
				f.result(15)
			del admin
			produce(bootstrap, topic, args.messages)
			queue = f"bench-{run}"
			procs.append(start_process("jsonworker", "--queue", queue, "--numworkers", str(args.workers)))
			time.sleep(3)  # workers up before the first message arrives
			procs.append(start_process("eventdispatcher", "--queue", queue))

			per_message = run_through(topic, args.messages)
			results["ingest_with_per_message_handler_messages_per_second"] = (
				args.messages - per_message["stored_at_first"]
			) / (per_message["stored"] - per_message["first"])
			results["stored_and_processed_messages_per_second"] = (
				args.messages - per_message["processed_at_first"]
			) / (per_message["processed"] - per_message["first"])
			produce(bootstrap, batch_topic, args.batch_messages)  # now: the runs must not overlap
			batch = run_through(batch_topic, args.batch_messages)
			results["batch_stored_and_processed_messages_per_second"] = (
				args.batch_messages - batch["processed_at_first"]
			) / (batch["processed"] - batch["first"])
			results["ingest_messages_per_second"] = (args.batch_messages - batch["stored_at_first"]) / (
				batch["stored"] - batch["first"]
			)

			# processing alone, one processor in this process: rows stored beforehand, then handled
			records = [
				{"topic": direct_topic, "partition": 0, "offset": i, "key": env.key,
					"value": envelope.encode(env).decode(), "value_b64": False}
				for i, env in enumerate(
					envelope.build(doctype="Item", docname=f"D-{i % 500}", event="on_update", topic=direct_topic,
						payload={"i": i}, origin="bench", origin_site="bench.remote")
					for i in range(args.batch_messages)
				)
			]  # fmt: skip
			stop_process(procs.pop())  # no dispatcher: nothing else touches these rows
			for chunk in range(0, len(records), 1000):
				intake.store(records[chunk : chunk + 1000])
			frappe.db.commit()
			started = time.perf_counter()
			handled = processor.process(max_seconds=600)
			results["batch_processed_messages_per_second"] = handled / (time.perf_counter() - started)

			if args.memory_messages:
				procs.append(start_process("eventdispatcher", "--queue", queue))
				produce(bootstrap, memory_topic, args.memory_messages, docs=5000)
				memory = run_through(memory_topic, args.memory_messages, sample_rss=True)
				# growth is what matters: the peak after the first 10,000 against the size at 10,000
				later = [r for r in memory["rss"] if r[0] >= min(10_000, args.memory_messages)]
				after_10k = later[0]
				peak_dispatcher = max(r[1] for r in later)
				peak_worker = max(r[2] for r in later)
				results["memory"] = {
					"messages": args.memory_messages,
					"dispatcher_kib_after_10k": after_10k[1],
					"dispatcher_kib_peak": peak_dispatcher,
					"jsonworker_kib_after_10k": after_10k[2],
					"jsonworker_kib_peak": peak_worker,
					"dispatcher_peak_ratio": peak_dispatcher / after_10k[1],
					"jsonworker_peak_ratio": peak_worker / after_10k[2],
					"samples": memory["rss"][:: max(1, len(memory["rss"]) // 200)],
				}
	finally:
		for p in procs:
			stop_process(p)
		frappe.destroy()

	rows = [
		("messages", f"{args.messages:,} (3 partitions, {args.workers} jsonworkers, 1 dispatcher)"),
		(
			"ingest, Kafka → Message Log, batch handler run (messages/s)",
			f"{results['ingest_messages_per_second']:,.0f}",
		),  # fmt: skip
		(
			"ingest, while per-message handlers share the workers (messages/s)",
			f"{results['ingest_with_per_message_handler_messages_per_second']:,.0f}",
		),  # fmt: skip
		(
			"stored + processed, per-message no-op handler (messages/s)",
			f"{results['stored_and_processed_messages_per_second']:,.0f}",
		),  # fmt: skip
		(
			"stored + processed, batch no-op handler (messages/s)",
			f"{results['batch_stored_and_processed_messages_per_second']:,.0f}",
		),  # fmt: skip
		(
			"processed, batch no-op handler, one processor (messages/s)",
			f"{results['batch_processed_messages_per_second']:,.0f}",
		),  # fmt: skip
	]
	if "memory" in results:
		m = results["memory"]
		rows += [
			(f"memory over {m['messages']:,} messages: dispatcher peak / after 10k",
				f"{m['dispatcher_kib_peak'] / 1024:.0f} / {m['dispatcher_kib_after_10k'] / 1024:.0f} MiB "
				f"(×{m['dispatcher_peak_ratio']:.2f})"),
			(f"memory over {m['messages']:,} messages: jsonworkers peak / after 10k",
				f"{m['jsonworker_kib_peak'] / 1024:.0f} / {m['jsonworker_kib_after_10k'] / 1024:.0f} MiB "
				f"(×{m['jsonworker_peak_ratio']:.2f})"),
		]  # fmt: skip
	write_results(out, "Spine consumer", rows, results)


if __name__ == "__main__":
	main()
