"""Consumer benchmark: ingest (Kafka → Message Log) and processing throughput, produce → handler latency.

Starts a local broker, the real ``eventdispatcher`` and ``jsonworker`` processes, and measures
on a test site (it commits Message Log rows):
    SPINE_BENCH=/path/to/frappe-bench SPINE_SITE=test.local benchmarks/run.sh consumer
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
import uuid

from common import connect_site, local_broker, site_kafka, summary, write_results

from spine import compat, envelope

DEMO = "spine.demo"


def bench_envelope(topic: str, docname: str, payload: dict) -> tuple[str, str, bytes, list]:
	"""(message id, key, value, headers) of a Spine message from a pretend remote site."""
	env = envelope.build(doctype="Item", docname=docname, event="on_update", topic=topic,
		payload={"name": docname, **payload}, origin="bench", origin_site="bench.remote")  # fmt: skip
	return env.message_id, env.key, envelope.encode(env), env.headers()


def start(*args: str) -> subprocess.Popen:
	log = tempfile.NamedTemporaryFile(prefix="spine-bench-", suffix=".log", delete=False)
	return subprocess.Popen(
		["bench", "--site", os.environ["SPINE_SITE"], *args],
		cwd=os.environ["SPINE_BENCH"],
		stdout=log,
		stderr=subprocess.STDOUT,
		start_new_session=True,
	)


def stop(proc: subprocess.Popen) -> None:
	if proc.poll() is None:
		os.killpg(proc.pid, signal.SIGTERM)
		try:
			proc.wait(30)
		except subprocess.TimeoutExpired:
			os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--messages", type=int, default=5000)
	parser.add_argument("--latency-samples", type=int, default=60)
	parser.add_argument("--workers", type=int, default=2)
	parser.add_argument("--out", default="benchmarks/results/consumer.json")
	args = parser.parse_args()
	out = str((__import__("pathlib").Path.cwd() / args.out).resolve())

	frappe = connect_site()
	from confluent_kafka import Producer
	from confluent_kafka.admin import AdminClient, NewTopic

	from spine.demo import CALLS_KEY

	config = frappe.get_single("Spine Consumer Config")
	saved = [{k: v for k, v in r.as_dict().items() if k not in ("name", "parent")} for r in config.configs]
	topic = f"bench-in-{uuid.uuid4().hex[:6]}"
	latency_topic = f"bench-lat-{uuid.uuid4().hex[:6]}"
	procs: list[subprocess.Popen] = []

	def count(status: str | None = None) -> int:
		frappe.db.rollback()
		filters = {"direction": "Inbound", "topic": topic}
		if status:
			filters["status"] = status
		return frappe.db.count("Message Log", filters)

	try:
		with local_broker() as bootstrap, site_kafka(bootstrap, **{"group.id": f"bench-{topic}"}):
			admin = AdminClient({"bootstrap.servers": bootstrap})
			for f in admin.create_topics([NewTopic(topic, 3, 1), NewTopic(latency_topic, 3, 1)]).values():
				f.result(15)
			doc = frappe.get_single("Spine Consumer Config")
			doc.set(
				"configs",
				[
					{"topic": topic, "document_type": "Item", "event_handler": f"{DEMO}.noop"},
					{"topic": latency_topic, "document_type": "Item", "event_handler": f"{DEMO}.record_call"},
				],
			)
			doc.save(ignore_permissions=True)
			frappe.db.commit()

			producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
			for i in range(args.messages):
				_, key, value, headers = bench_envelope(topic, f"B-{i % 500}", {"i": i})
				producer.produce(topic, value, key=key, headers=headers)
				producer.poll(0)
			assert producer.flush(60) == 0

			queue = f"bench-{uuid.uuid4().hex[:6]}"
			procs.append(start("jsonworker", "--queue", queue, "--numworkers", str(args.workers)))
			time.sleep(3)  # workers up before the first message arrives
			t0 = time.perf_counter()
			procs.append(start("eventdispatcher", "--queue", queue))
			first_stored = all_stored = all_processed = None
			deadline = time.monotonic() + 600
			while time.monotonic() < deadline:
				stored, processed = count(), count("Processed")
				now = time.perf_counter() - t0
				if stored and first_stored is None:
					first_stored = now
				if stored >= args.messages and all_stored is None:
					all_stored = now
				if processed >= args.messages:
					all_processed = now
					break
				time.sleep(0.2)
			assert (
				all_processed is not None
			), f"only {count('Processed')} of {args.messages} processed in time"

			# latency on an idle pipeline: one message at a time
			compat.cache().delete_value(CALLS_KEY)
			sent: dict[str, float] = {}
			for i in range(args.latency_samples):
				message_id, key, value, headers = bench_envelope(latency_topic, f"L-{i}", {})
				sent[message_id] = time.time()
				producer.produce(latency_topic, value, key=key, headers=headers)
				producer.flush(10)
				time.sleep(0.25)
			deadline = time.monotonic() + 60
			calls: dict[str, float] = {}
			while len(calls) < len(sent) and time.monotonic() < deadline:
				calls = {
					c.decode().split()[0]: float(c.decode().split()[1])
					for c in compat.cache().lrange(CALLS_KEY, 0, -1)
				}
				time.sleep(0.2)
			latencies = [(calls[m] - t) * 1000 for m, t in sent.items() if m in calls]
	finally:
		for p in procs:
			stop(p)
		doc = frappe.get_single("Spine Consumer Config")
		doc.set("configs", saved)
		doc.save(ignore_permissions=True)
		frappe.db.commit()
		frappe.destroy()

	lat = summary(latencies)
	ingest_rate = args.messages / (all_stored - first_stored) if all_stored > first_stored else float("inf")
	rows = [
		("messages", f"{args.messages:,} (3 partitions, {args.workers} jsonworkers, 1 dispatcher)"),
		("ingest throughput, Kafka → Message Log (messages/s)", f"{ingest_rate:,.0f}"),
		(
			"end-to-end throughput, stored and processed, no-op handler (messages/s)",
			f"{args.messages / all_processed:,.0f}",
		),
		("time to first stored row (s)", f"{first_stored:.2f}"),
		("produce → handler latency, median (ms)", f"{lat['median']:.0f}"),
		("produce → handler latency, p99 (ms)", f"{lat['p99']:.0f}"),
		("latency samples received", f"{len(latencies)} / {len(sent)}"),
	]
	write_results(
		out,
		"Spine consumer",
		rows,
		{
			"messages": args.messages,
			"workers": args.workers,
			"seconds": {
				"first_stored": first_stored,
				"all_stored": all_stored,
				"all_processed": all_processed,
			},
			"ingest_messages_per_second": ingest_rate,
			"processed_messages_per_second": args.messages / all_processed,
			"latency_ms": lat,
		},
	)


if __name__ == "__main__":
	main()
