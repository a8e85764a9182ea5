"""One set of Spine processes for the whole bench versus one set per site:

* processes, total RSS (and PSS, which counts a page shared by forked processes once) and idle CPU
  of spine-relay + eventdispatcher + jsonworker (2 workers) serving 1, 5 and 20 sites;
* save → handler latency on site A (SPINE_SITE) while the other sites idle, in both forms;
* fairness: A's save → handler latency while another site works through a 100,000-message backlog
  (bench-wide processes), beside A's idle latency;
* on Apache Kafka, the bench-wide set again with variants of the sites' kafka blocks (``--variants``):
  the idle pause of the development broker (``spine.consumer.idle.pause.ms`` 10, with the relay's
  doorbell; measured by default) and ``wait50``, ``fetch.wait.max.ms`` 50 instead of librdkafka's 500
  (what Spine set before it ran on Kafka), each with the broker's own idle CPU beside the processes'
  (an idle consumer's fetches cost the broker too).

Every served site has Spine installed, a kafka block on one local broker and a Spine Consumer
Config row of its own topic (it subscribes and idles). The extra sites are made with
``bench new-site --install-app spine`` (named spine-bwb-NN.test; creating one takes ~25 s here, so
20 sites cost ~8 minutes the first time) and kept for the next run unless ``--drop-sites``.

    SPINE_BENCH=/path/to/frappe-bench SPINE_SITE=test.local benchmarks/run.sh benchwide
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from common import (
	BROKER_PIDS,
	connect_site,
	local_broker,
	save_to_handler_ms,
	start_process,
	stop_process,
	summary,
	tree_cpu_seconds,
	tree_rss_kb,
	wait_until,
	write_results,
)

from tests.bench.helpers import DB_ROOT_ARGS, bench_run, descendants, on_site

DEMO = "spine.demo"


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--sites", default="1,5,20", help="how many sites to serve, comma-separated")
	parser.add_argument("--idle-seconds", type=float, default=20.0, help="idle CPU is measured this long")
	parser.add_argument("--samples", type=int, default=30, help="saves on A timed one at a time")
	parser.add_argument("--backlog", type=int, default=100_000, help="messages of the busy site's backlog")
	parser.add_argument("--drop-sites", action="store_true", help="drop the extra sites at the end")
	parser.add_argument("--variants", default="pause",
		help="kafka-block variants of the bench-wide set to measure too (pause, wait50; '' for none)")  # fmt: skip
	parser.add_argument("--out", default="benchmarks/results/benchwide.json")
	args = parser.parse_args()
	out = str((Path.cwd() / args.out).resolve())
	counts = [int(n) for n in args.sites.split(",")]

	frappe = connect_site()
	site_a = frappe.local.site
	extra = [f"spine-bwb-{i:02d}.test" for i in range(1, max(*counts, 2))]  # one more for the fairness run
	created = make_sites(extra)
	run = uuid.uuid4().hex[:6]
	topics = {site: f"bwb-{run}-{i}" for i, site in enumerate([site_a, *extra])}
	results: dict = {"sites_created_seconds": created, "by_sites": {}}
	try:
		with local_broker() as bootstrap, ExitStack() as restore:
			from confluent_kafka.admin import AdminClient, NewTopic

			admin = AdminClient({"bootstrap.servers": bootstrap})
			for f in admin.create_topics([NewTopic(t, 3) for t in topics.values()]).values():
				f.result(15)
			for site, topic in topics.items():
				restore.enter_context(site_configured(frappe, site, topic, producer=site == site_a))
			for k in counts:
				served = [site_a, *extra[: k - 1]]
				for site in [site_a, *extra]:
					set_kafka(frappe, site, bootstrap if site in served else None)
				row = {}
				for mode in ("bench-wide", "per-site"):
					row[mode] = measure(frappe, mode, served, site_a, topics[site_a], args)
					print_row(k, mode, row[mode])
				for variant in [v for v in args.variants.split(",") if v]:
					for site in served:
						set_kafka(frappe, site, bootstrap, VARIANTS[variant][1])
					mode = f"bench-wide, {VARIANTS[variant][0]}"
					row[mode] = measure(frappe, "bench-wide", served, site_a, topics[site_a], args)
					print_row(k, mode, row[mode])
					for site in served:
						set_kafka(frappe, site, bootstrap)
				results["by_sites"][k] = row
			# fairness: A and one busy site, bench-wide processes
			busy = extra[0]
			for site in [site_a, *extra]:
				set_kafka(frappe, site, bootstrap if site in (site_a, busy) else None)
			results["fairness"] = fairness(frappe, site_a, busy, topics, bootstrap, args)
	finally:
		if args.drop_sites:
			for site in extra:
				bench_run("drop-site", site, *DB_ROOT_ARGS, "--no-backup", "--force")

	rows = []
	for k, by_mode in results["by_sites"].items():
		for mode, m in by_mode.items():
			rows.append(
				(
					f"{k} site(s), {mode}: processes / RSS / PSS / idle CPU / save → handler p50 (p95)",
					f"{m['processes']} / {m['rss_mb']:.0f} MB / {m['pss_mb']:.0f} MB / {m['idle_cpu_percent']:.1f} % "
					f"(broker {m['broker_idle_cpu_percent']:.1f} %) / "
					f"{m['latency_ms']['median']:.1f} ({m['latency_ms']['p95']:.1f}) ms",
				)
			)
	one = results["by_sites"].get(1, {}).get("per-site")
	for k, by_mode in results["by_sites"].items():
		if one:
			ratio = by_mode["bench-wide"]["rss_mb"] / one["rss_mb"]
			results.setdefault("rss_ratio_to_one_site_set", {})[k] = ratio
			rows.append((f"{k} site(s) bench-wide RSS / one site's set (goal ≤ 2 at 20)", f"{ratio:.2f}"))
	fair = results["fairness"]
	rows.append(
		(
			f"A's save → handler p50 while another site has a {args.backlog:,}-message backlog / idle (goal ≤ 2)",
			f"{fair['busy_latency_ms']['median']:.1f} / {fair['idle_latency_ms']['median']:.1f} ms = "
			f"{fair['ratio']:.2f}",
		)
	)
	write_results(out, "benchwide", rows, results)


def make_sites(sites: list[str]) -> dict[str, float]:
	"""Create the sites that do not exist yet (Spine installed); seconds each one took."""
	took = {}
	for site in sites:
		if os.path.exists(os.path.join(os.getcwd(), site, "site_config.json")):
			continue
		started = time.monotonic()
		made = bench_run("new-site", site, *DB_ROOT_ARGS, "--admin-password", "admin",
			"--db-host", "127.0.0.1", "--install-app", "spine")  # fmt: skip
		if made.returncode != 0:
			raise SystemExit(f"bench new-site {site} failed:\n{made.stderr[-2000:]}")
		took[site] = round(time.monotonic() - started, 1)
		print(f"created {site} in {took[site]:.0f}s", flush=True)
	return took


class site_configured:
	"""``site`` consumes ``topic`` (A with the call-recording handler, A's ToDos published to it);
	its previous configs and kafka block are put back on exit."""

	def __init__(self, frappe, site: str, topic: str, producer: bool):
		self.frappe, self.site, self.topic, self.producer = frappe, site, topic, producer

	def __enter__(self):
		frappe = self.frappe
		with on_site(self.site):
			self.kafka = frappe.get_site_config().get("kafka")
			consumer = frappe.get_single("Spine Consumer Config")
			self.consumer = [_row(r) for r in consumer.configs], consumer.enabled
			self.test_mode = consumer.test_mode
			handler = f"{DEMO}.record_call" if self.producer else f"{DEMO}.noop"
			consumer.enabled = 1
			consumer.test_mode = 1 if self.producer else 0  # A handles its own messages
			consumer.set(
				"configs", [{"topic": self.topic, "document_type": "ToDo", "event_handler": handler}]
			)
			consumer.save(ignore_permissions=True)
			producer = frappe.get_single("Spine Producer Config")
			self.routes = [_row(r) for r in producer.configs], producer.enabled
			if self.producer:
				producer.enabled = 1
				producer.set("configs", [{"document_type": "ToDo", "topic": self.topic, "on_update": 1}])
				producer.save(ignore_permissions=True)
			frappe.db.commit()  # on_site commits only on other sites than the current one
		return self

	def __exit__(self, *exc):
		from frappe.installer import update_site_config

		frappe = self.frappe
		with on_site(self.site):
			for doctype, (rows, enabled) in (
				("Spine Consumer Config", self.consumer),
				("Spine Producer Config", self.routes),
			):
				doc = frappe.get_single(doctype)
				doc.enabled = enabled
				doc.set("configs", rows)
				if doctype == "Spine Consumer Config":
					doc.test_mode = self.test_mode
				doc.save(ignore_permissions=True)
			update_site_config("kafka", self.kafka if self.kafka is not None else "None")
			frappe.db.commit()


def _row(row) -> dict:
	return {k: v for k, v in row.as_dict().items() if k not in ("name", "parent", "creation", "modified")}


# variant name: (how the table names it, what the sites' kafka blocks add)
VARIANTS = {
	"pause": ("idle pause 10 ms", {"spine.consumer.idle.pause.ms": 10}),
	"wait50": ("fetch.wait.max.ms 50", {"fetch.wait.max.ms": 50}),
}


def set_kafka(frappe, site: str, bootstrap: str | None, extra: dict | None = None) -> None:
	from frappe.installer import update_site_config

	from tests.brokers import client_settings

	with on_site(site):
		conf = {
			"bootstrap.servers": bootstrap,
			"client.id": f"bench-{site}",
			**client_settings(),
			**(extra or {}),
		}
		update_site_config("kafka", conf if bootstrap else "None")


def measure(frappe, mode: str, served: list[str], site_a: str, topic_a: str, args) -> dict:
	"""Start ``mode``'s processes for ``served``, wait until every site is assigned its partitions,
	then count processes and memory, idle CPU and A's save → handler latency."""
	queue = f"bwb-{uuid.uuid4().hex[:6]}"
	procs = []
	started = time.monotonic()
	try:
		if mode == "bench-wide":
			procs = [
				start_process("spine-relay", site=""),
				start_process("eventdispatcher", "--queue", queue, site=""),
				start_process("jsonworker", "--queue", queue, "--numworkers", "2", site=""),
			]
			dispatcher_logs = [procs[1].log_path]
		else:
			for site in served:
				procs += [
					start_process("spine-relay", site=site),
					start_process("eventdispatcher", "--queue", queue, site=site),
					start_process("jsonworker", "--queue", queue, "--numworkers", "2", site=site),
				]
			dispatcher_logs = [p.log_path for p in procs[1::3]]

		def all_assigned() -> bool:
			text = "".join(Path(p).read_text(errors="replace") for p in dispatcher_logs)
			return all(f"@{site}: assigned" in text for site in served)

		wait_until(all_assigned, 120 + 10 * len(served), f"{mode}: every site's partitions assigned")
		ready = time.monotonic() - started
		time.sleep(10)  # let start-up work settle (imports, first metadata, group joins)
		pids = set()
		for p in procs:
			pids |= {p.pid, *descendants(p.pid)}
		python_pids = {pid for pid in pids if _is_python(pid)}
		rss = sum(tree_rss_kb(p.pid) for p in procs)
		pss = sum(_pss_kb(pid) for pid in pids)
		cpu0 = sum(tree_cpu_seconds(p.pid) for p in procs)
		broker0 = sum(tree_cpu_seconds(pid) for pid in BROKER_PIDS)
		time.sleep(args.idle_seconds)
		idle_cpu = (sum(tree_cpu_seconds(p.pid) for p in procs) - cpu0) / args.idle_seconds
		broker_cpu = (sum(tree_cpu_seconds(pid) for pid in BROKER_PIDS) - broker0) / args.idle_seconds
		latency = save_to_handler_ms(frappe, topic_a, args.samples)
		return {
			"sites": len(served),
			"ready_seconds": round(ready, 1),
			"processes": len(python_pids),
			"rss_mb": rss / 1024,
			"pss_mb": pss / 1024,
			"idle_cpu_percent": idle_cpu * 100,
			"broker_idle_cpu_percent": broker_cpu * 100,
			"latency_ms": summary(latency),
		}
	finally:
		for p in procs:
			stop_process(p)


def fairness(frappe, site_a: str, busy: str, topics: dict, bootstrap: str, args) -> dict:
	"""A's latency idle, then while ``busy`` works through ``args.backlog`` messages (bench-wide)."""
	from confluent_kafka import Producer

	from tests.bench.helpers import spine_message

	queue = f"bwb-fair-{uuid.uuid4().hex[:6]}"
	procs = [
		start_process("spine-relay", site=""),
		start_process("eventdispatcher", "--queue", queue, site=""),
		start_process("jsonworker", "--queue", queue, "--numworkers", "2", site=""),
	]
	try:
		wait_until(
			lambda: all(f"@{s}: assigned" in Path(procs[1].log_path).read_text() for s in (site_a, busy)),
			120,
			"both sites assigned",
		)
		time.sleep(5)
		idle = save_to_handler_ms(frappe, topics[site_a], args.samples)

		def busy_rows() -> int:
			with on_site(busy):
				frappe.db.rollback()
				return frappe.db.sql(
					"SELECT COUNT(*) FROM `tabMessage Log` WHERE direction = 'Inbound' AND topic = %s",
					(topics[busy],),
				)[0][0]

		producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "enable.idempotence": True})
		for i in range(args.backlog):
			_, (key, value, headers) = spine_message(topics[busy], "ToDo", f"BL-{i % 1000}")
			producer.produce(topics[busy], value=value, key=key, headers=headers or [])
			if i % 10_000 == 0:
				producer.poll(0)
		producer.flush(120)
		wait_until(lambda: busy_rows() > 1000, 120, "the busy site storing its backlog")
		started_rows = busy_rows()
		during = save_to_handler_ms(frappe, topics[site_a], args.samples)
		ended_rows = busy_rows()
		if ended_rows >= args.backlog:
			print("warning: the backlog was done before the samples were; raise --backlog")
		return {
			"idle_latency_ms": summary(idle),
			"busy_latency_ms": summary(during),
			"ratio": summary(during)["median"] / summary(idle)["median"],
			"busy_site_rows_during_samples": [started_rows, ended_rows],
		}
	finally:
		for p in procs:
			stop_process(p)


def _is_python(pid: int) -> bool:
	try:
		with open(f"/proc/{pid}/cmdline", "rb") as f:
			return b"python" in f.read().split(b"\0")[0]
	except OSError:
		return False


def _pss_kb(pid: int) -> int:
	try:
		with open(f"/proc/{pid}/smaps_rollup") as f:
			return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
	except (OSError, StopIteration):
		return 0


def print_row(k: int, mode: str, m: dict) -> None:
	print(
		f"{k:>3} site(s) {mode:<10}: {m['processes']:>3} processes, RSS {m['rss_mb']:,.0f} MB, PSS "
		f"{m['pss_mb']:,.0f} MB, idle CPU {m['idle_cpu_percent']:.1f} % (broker {m['broker_idle_cpu_percent']:.1f} %), "
		"save → handler p50 "
		f"{m['latency_ms']['median']:.1f} ms (ready in {m['ready_seconds']}s)",
		flush=True,
	)


if __name__ == "__main__":
	main()
