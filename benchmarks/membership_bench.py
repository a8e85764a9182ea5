"""Crash recovery as Kafka behaves: how long a consumer SIGKILLed and started again at once (as a
supervisor does) waits before it is handed its partitions back, for each way of joining a group.

First the protocol itself, with plain confluent-kafka consumers (no Frappe) on a real Apache Kafka broker: a producer writes 50
messages a second to a 3-partition topic; a consumer of the group reads for 3 s and is SIGKILLed;
a new one starts at once with the same settings. Measured: SIGKILL → the new consumer's first
message that was produced after the kill. Modes:

* ``dynamic``: the librdkafka defaults (classic protocol, ``session.timeout.ms`` 45 s);
* ``static``: ``group.instance.id`` set, the same id after the restart (what Spine's dispatchers do);
* ``kip848``: ``group.protocol=consumer`` (the new protocol, dynamic member);
* ``kip848+static``: the new protocol with ``group.instance.id``;
* ``short-session``: dynamic, ``session.timeout.ms`` 10 s.

Then Spine itself: its eventdispatcher (a static member) SIGKILLed and started again at once while
messages arrive, measured to the first message produced after the kill stored in Message Log; this,
not the plain consumers' figure, is what the summary's restart goal reads.

    SPINE_BENCH=/path/to/frappe-bench SPINE_SITE=test.local benchmarks/run.sh membership
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from common import write_results

MODES = ("dynamic", "static", "kip848", "kip848+static", "short-session")


def member(bootstrap: str, group: str, topic: str, mode: str) -> None:
	"""A consumer of ``group`` printing one JSON line per message (or error) until killed."""
	from confluent_kafka import Consumer

	conf = {
		"bootstrap.servers": bootstrap,
		"group.id": group,
		"auto.offset.reset": "earliest",
		"enable.auto.commit": True,
		"auto.commit.interval.ms": 200,
	}
	if "static" in mode:
		conf["group.instance.id"] = f"{group}-0"
	if "kip848" in mode:
		conf["group.protocol"] = "consumer"
	if mode == "short-session":
		conf.update({"session.timeout.ms": 10_000, "heartbeat.interval.ms": 1_000})
	consumer = Consumer(conf)
	consumer.subscribe([topic])
	while True:
		msg = consumer.poll(0.2)
		if msg is None:
			continue
		if msg.error():
			print(json.dumps({"t": time.time(), "error": str(msg.error())}), flush=True)
			if msg.error().fatal():
				return
			continue
		print(json.dumps({"t": time.time(), "v": int(msg.value())}), flush=True)


def recovery(bootstrap: str, mode: str, wait: float) -> dict:
	"""SIGKILL a consumer of a fresh group mid-flow, start another at once; how long until it reads
	what was produced after the kill (None if not within ``wait`` seconds), and its errors."""
	from confluent_kafka import Producer
	from confluent_kafka.admin import AdminClient, NewTopic

	run = uuid.uuid4().hex[:6]
	topic, group = f"bench-member-{run}", f"bench-member-{run}"
	admin = AdminClient({"bootstrap.servers": bootstrap})
	for f in admin.create_topics([NewTopic(topic, 3)]).values():
		f.result(30)
	producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
	stop = threading.Event()
	produced_after_kill: list[int] = []
	killed_at: list[float] = []

	def produce() -> None:
		i = 0
		while not stop.is_set():
			producer.produce(topic, key=str(i % 7), value=str(i))
			producer.poll(0)
			if killed_at:
				produced_after_kill.append(i)
			i += 1
			time.sleep(0.02)
		producer.flush(10)

	def start() -> subprocess.Popen:
		return subprocess.Popen(
			[sys.executable, __file__, "--member", bootstrap, group, topic, mode],
			stdout=subprocess.PIPE,
			text=True,
		)

	threading.Thread(target=produce, daemon=True).start()
	first = start()
	first.stdout.readline()  # reading
	time.sleep(3)
	first.kill()
	first.wait()
	killed_at.append(time.time())
	second = start()
	lines: list[dict] = []
	threading.Thread(target=lambda: lines.extend(json.loads(x) for x in second.stdout), daemon=True).start()
	resumed = None
	deadline = killed_at[0] + wait
	while time.time() < deadline and resumed is None:
		after = set(produced_after_kill)
		hit = [x["t"] for x in list(lines) if x.get("v") in after]
		resumed = hit[0] - killed_at[0] if hit else None
		if second.poll() is not None and resumed is None:
			break  # the consumer stopped on a fatal error
		time.sleep(0.1)
	stop.set()
	second.kill()
	second.wait()
	admin.delete_topics([topic])
	errors = sorted({x["error"] for x in lines if "error" in x})
	return {"resumed_after_s": resumed, "errors": errors}


def spine_dispatcher(wait: float, rounds: int) -> dict:
	"""Spine's own eventdispatcher (a static member, as shipped), SIGKILLed and started again at once
	while 50 messages a second arrive: SIGKILL → the first message produced after the kill stored in
	Message Log (the jsonworker runs throughout). ``rounds`` times; the median is the figure."""
	import os
	import signal
	import statistics

	from common import connect_site, descendants, procfile_pipeline, start_process, stop_process
	from confluent_kafka import Producer
	from frappe.utils import now_datetime

	from spine import envelope

	frappe = connect_site()
	run = uuid.uuid4().hex[:6]
	topic = f"bench-restart-{run}"
	resumed: list[float | None] = []
	consumer_rows = [{"topic": topic, "document_type": "ToDo", "event_handler": "spine.demo.noop"}]
	try:
		with procfile_pipeline(frappe, run, [], consumer_rows, [topic], 1) as (bootstrap, procs):
			producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
			dispatcher = procs[2]
			for _ in range(rounds):
				stop, sent = threading.Event(), []

				def produce() -> None:
					n = 0
					while not stop.wait(0.02):
						env = envelope.build(doctype="ToDo", docname=f"R-{n % 30}", event="on_update", topic=topic,
							payload={"n": n}, origin="bench", origin_site="bench.remote")  # fmt: skip
						producer.produce(topic, envelope.encode(env), env.key)
						producer.poll(0)
						sent.append((time.time(), env.message_id))
						n += 1

				feeder = threading.Thread(target=produce, daemon=True)
				feeder.start()
				time.sleep(3)
				for pid in [dispatcher.pid, *descendants(dispatcher.pid)]:
					try:
						os.kill(pid, signal.SIGKILL)
					except ProcessLookupError:
						pass
				dispatcher.wait()
				killed_at, killed_site = (
					time.time(),
					now_datetime(),
				)  # the site's clock, as creation is stamped
				dispatcher = start_process("eventdispatcher", "--queue", f"bench-{run}")
				procs[2] = dispatcher
				got = None
				while time.time() < killed_at + wait and got is None:
					after = [m for t, m in sent if t > killed_at]
					if after:
						frappe.db.rollback()
						stamp = frappe.db.sql(
							"SELECT MIN(creation) FROM `tabMessage Log` WHERE direction = 'Inbound' AND message_id IN %s",
							(tuple(after[:200]),),
						)[0][0]
						if stamp is not None:
							got = (stamp - killed_site).total_seconds()
					time.sleep(0.2)
				resumed.append(got)
				stop.set()
				feeder.join(5)
				print(
					f"  Spine's eventdispatcher: stored again {got if got is None else round(got, 2)} s after SIGKILL",
					flush=True,
				)
			stop_process(dispatcher)
	finally:
		frappe.destroy()
	measured = [r for r in resumed if r is not None]
	return {
		"rounds": resumed,
		"resumed_after_s": statistics.median(measured) if len(measured) == len(resumed) else None,
	}


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--modes", default=",".join(MODES))
	parser.add_argument("--wait", type=float, default=90, help="seconds to wait for the restarted consumer")
	parser.add_argument("--out", default="benchmarks/results/membership.json")
	parser.add_argument(
		"--spine-rounds", type=int, default=3, help="rounds with Spine's own eventdispatcher (0: none)"
	)
	parser.add_argument("--member", nargs=4, help=argparse.SUPPRESS)
	args = parser.parse_args()
	if args.member:
		member(*args.member)
		return
	out = str((Path.cwd() / args.out).resolve())
	from tests.brokers import running_broker

	results: dict = {"modes": {}}
	with running_broker() as broker:
		results["broker"] = broker.description
		print(f"broker: {broker.description}", flush=True)
		for mode in args.modes.split(","):
			results["modes"][mode] = recovery(broker.bootstrap_servers, mode, args.wait)
			print(f"  {mode}: {results['modes'][mode]}", flush=True)
	rows = [
		(
			f"{mode}: SIGKILLed consumer started again at once → reading again after (s)",
			f"{r['resumed_after_s']:.1f}"
			if r["resumed_after_s"] is not None
			else f"not within {args.wait:.0f} s{': ' + '; '.join(r['errors']) if r['errors'] else ''}",
		)
		for mode, r in results["modes"].items()
	]
	results["static_resumed_after_s"] = results["modes"].get("static", {}).get("resumed_after_s")
	if args.spine_rounds:
		spine = spine_dispatcher(args.wait, args.spine_rounds)
		results["spine_dispatcher"] = spine
		results["spine_dispatcher_resumed_after_s"] = spine["resumed_after_s"]
		rows.append((
			f"Spine's eventdispatcher SIGKILLed and started again at once → storing again after (s, median of "
			f"{args.spine_rounds}; the kill-to-stored time counts its start-up too)",
			f"{spine['resumed_after_s']:.1f}" if spine["resumed_after_s"] is not None else f"not within {args.wait:.0f} s",
		))  # fmt: skip
	write_results(
		out, "Spine crash recovery: how a restarted group member gets its partitions back", rows, results
	)


if __name__ == "__main__":
	main()
