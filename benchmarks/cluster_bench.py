"""Kafka as production runs it: a three-broker cluster, and TLS + SASL, beside one plain broker.

For each broker setup, on the same site and machine, in rounds that alternate the order:

* save → handler latency, median / p95 (the Procfile processes, one site handling its own topic);
* relay throughput: a backlog of captured events published by one drain, outbox → broker confirmed.

Setups: one KRaft node (plaintext); three KRaft nodes (``default.replication.factor=3``,
``min.insync.replicas=2``: Spine's ``acks=all`` waits for two replicas); one node with SASL_SSL
(SCRAM-SHA-512) and ACLs, the site logging in as a user allowed exactly its topics and group.

    SPINE_BENCH=/path/to/frappe-bench SPINE_SITE=test.local benchmarks/run.sh cluster
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import uuid
from pathlib import Path

from common import connect_site, procfile_pipeline, save_to_handler_ms, site_kafka, summary, write_results

DEMO = "spine.demo"
USER, PASSWORD = "spine-bench", "bench-secret"


@contextlib.contextmanager
def setup(name: str):
	"""``(kafka block, admin conf)`` of a running broker setup ``name``; stopped afterwards."""
	from tests.apache_kafka.broker import KraftCluster
	from tests.apache_kafka.security import SecureKraftCluster

	if name == "tls+sasl":
		cluster = SecureKraftCluster(1, users={USER: PASSWORD}).start()
		try:
			_allow_bench_user(cluster)
			yield cluster.client_conf(USER), cluster.admin_conf()
		finally:
			cluster.stop()
		return
	cluster = KraftCluster(3 if name == "three brokers" else 1).start()
	try:
		conf = {"bootstrap.servers": cluster.bootstrap_servers}
		yield conf, conf
	finally:
		cluster.stop()


def _allow_bench_user(cluster) -> None:
	"""The site's user may write and read the benchmark's topics and Spine's own, and use its groups."""
	from confluent_kafka.admin import (
		AclBinding,
		AclOperation,
		AclPermissionType,
		AdminClient,
		ResourcePatternType,
		ResourceType,
	)

	def allow(rtype, name, op, pattern=ResourcePatternType.PREFIXED):
		return AclBinding(rtype, name, pattern, f"User:{USER}", "*", op, AclPermissionType.ALLOW)

	acls = [
		allow(
			ResourceType.BROKER, "kafka-cluster", AclOperation.IDEMPOTENT_WRITE, ResourcePatternType.LITERAL
		)
	]
	for prefix in ("bench-", "spine."):
		acls += [
			allow(ResourceType.TOPIC, prefix, op)
			for op in (AclOperation.WRITE, AclOperation.READ, AclOperation.CREATE)
		]
	acls.append(allow(ResourceType.GROUP, "bench-", AclOperation.READ))
	admin = AdminClient(cluster.admin_conf())
	for f in admin.create_acls(acls).values():
		f.result(30)


def latency(frappe, kafka: dict, admin: dict, samples: int) -> dict:
	run = uuid.uuid4().hex[:6]
	topic = f"bench-cluster-{run}"
	with procfile_pipeline(frappe, run, [{"document_type": "ToDo", "topic": topic, "on_update": 1}],
			[{"topic": topic, "document_type": "ToDo", "event_handler": f"{DEMO}.record_call"}], [topic], 2,
			kafka=kafka, admin_conf=admin):  # fmt: skip
		return summary(save_to_handler_ms(frappe, topic, samples))


def relay_rate(frappe, kafka: dict, rows: int) -> float:
	"""Messages per second one relay drain publishes from a backlog of ``rows`` captured events."""
	from spine.producer import relay
	from spine.producer.capture import capture_raw

	topic = f"bench-relay-{uuid.uuid4().hex[:6]}"
	with site_kafka(kafka["bootstrap.servers"], **kafka):
		capture_raw("ToDo", "warm-up", "on_update", topic, {"n": -1})
		frappe.db.commit()
		relay.drain()  # the producer connected, the topic made
		for i in range(rows):
			capture_raw("ToDo", f"R-{i % 100}", "on_update", topic, {"n": i, "text": "relay benchmark " * 8})
			if i % 1000 == 999:
				frappe.db.commit()
		frappe.db.commit()
		started = time.perf_counter()
		published = 0
		while published < rows:
			done = relay.drain()
			if not done:
				raise SystemExit(f"the relay stopped publishing after {published} of {rows}")
			published += done
		rate = rows / (time.perf_counter() - started)
	frappe.db.delete("Message Log", {"topic": topic})
	frappe.db.commit()
	return rate


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--samples", type=int, default=40, help="saves timed per setup and round")
	parser.add_argument("--relay-rows", type=int, default=5_000, help="backlog one relay drain publishes")
	parser.add_argument("--rounds", type=int, default=2, help="rounds, alternating the order of the setups")
	parser.add_argument("--out", default="benchmarks/results/cluster.json")
	args = parser.parse_args()
	out = str((Path.cwd() / args.out).resolve())
	frappe = connect_site()
	names = ["one broker", "three brokers", "tls+sasl"]
	lat: dict[str, list[float]] = {n: [] for n in names}
	p95: dict[str, list[float]] = {n: [] for n in names}
	rates: dict[str, list[float]] = {n: [] for n in names}
	for r in range(args.rounds):
		for name in names if r % 2 == 0 else list(reversed(names)):
			with setup(name) as (kafka, admin):
				measured = latency(frappe, kafka, admin, args.samples)
				lat[name].append(measured["median"])
				p95[name].append(measured["p95"])
				rates[name].append(relay_rate(frappe, kafka, args.relay_rows))
			print(f"round {r + 1}, {name}: save → handler p50 {measured['median']:.1f} ms, relay "
				f"{rates[name][-1]:,.0f} msg/s", flush=True)  # fmt: skip
	med = {n: statistics.median(lat[n]) for n in names}
	rate = {n: statistics.median(rates[n]) for n in names}
	data = {
		"latency_ms_median": med,
		"latency_ms_p95": {n: statistics.median(p95[n]) for n in names},
		"relay_msg_per_s": rate,
		"cluster_latency_ratio": med["three brokers"] / med["one broker"],
		"cluster_relay_ratio": rate["three brokers"] / rate["one broker"],
		"tls_latency_ratio": med["tls+sasl"] / med["one broker"],
		"tls_relay_ratio": rate["tls+sasl"] / rate["one broker"],
		"rounds": args.rounds,
	}
	rows = [
		(f"save → handler p50 / p95, {n}", f"{med[n]:.1f} / {data['latency_ms_p95'][n]:.1f} ms") for n in names
	] + [(f"relay, outbox → confirmed, {n}", f"{rate[n]:,.0f} msg/s") for n in names] + [
		("three brokers (acks=all, 2 in sync) ÷ one: latency / relay", f"{data['cluster_latency_ratio']:.2f} / {data['cluster_relay_ratio']:.2f}"),
		("TLS + SASL ÷ plaintext: latency / relay (goal: costs ≤ 10 %)", f"{data['tls_latency_ratio']:.2f} / {data['tls_relay_ratio']:.2f}"),
	]  # fmt: skip
	write_results(out, "cluster", rows, data)


if __name__ == "__main__":
	main()
