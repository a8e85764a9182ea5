"""Crash recovery as Kafka behaves: how long a consumer SIGKILLed and started again at once (as a
supervisor does) waits before it is handed its partitions back, for each way of joining a group.

Plain confluent-kafka consumers (no Frappe) on a real Apache Kafka broker: a producer writes 50
messages a second to a 3-partition topic; a consumer of the group reads for 3 s and is SIGKILLed;
a new one starts at once with the same settings. Measured: SIGKILL → the new consumer's first
message that was produced after the kill. Modes:

* ``dynamic``: the librdkafka defaults (classic protocol, ``session.timeout.ms`` 45 s);
* ``static``: ``group.instance.id`` set, the same id after the restart (what Spine's dispatchers do);
* ``kip848``: ``group.protocol=consumer`` (the new protocol, dynamic member);
* ``kip848+static``: the new protocol with ``group.instance.id``;
* ``short-session``: dynamic, ``session.timeout.ms`` 10 s.

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


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--modes", default=",".join(MODES))
	parser.add_argument("--wait", type=float, default=90, help="seconds to wait for the restarted consumer")
	parser.add_argument("--out", default="benchmarks/results/membership.json")
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
	write_results(
		out, "Spine crash recovery: how a restarted group member gets its partitions back", rows, results
	)


if __name__ == "__main__":
	main()
