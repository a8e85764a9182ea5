"""Shared plumbing for Spine's benchmarks: the site, a local broker, tables and JSON output."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from tests.bench.helpers import bench_command, bench_cwd, descendants

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
	sys.path.insert(0, str(ROOT))


def connect_site():
	"""frappe.init + connect on SPINE_SITE in SPINE_BENCH (exits with a message if unset)."""
	bench, site = os.environ.get("SPINE_BENCH"), os.environ.get("SPINE_SITE")
	if not bench or not site:
		sys.exit(
			"set SPINE_BENCH=/path/to/frappe-bench and SPINE_SITE=<site> (a test site: benchmarks commit data)"
		)
	import frappe

	sites = os.path.join(bench, "sites")
	os.chdir(sites)
	frappe.init(site=site, sites_path=sites)
	frappe.connect()
	frappe.set_user("Administrator")
	return frappe


BROKER: list[str] = []  # what this benchmark ran against, for its JSON
BROKER_PIDS: list[int] = []  # its processes, where the benchmark started it


@contextmanager
def local_broker():
	"""A broker for the benchmark: Apache Kafka (one KRaft node) unless SPINE_TEST_BROKER=noida or
	SPINE_TEST_KAFKA say otherwise (tests/brokers.py); yields its bootstrap servers."""
	from tests.brokers import running_broker

	with running_broker() as broker:
		BROKER.append(broker.description)
		BROKER_PIDS[:] = list(broker.pids)
		print(f"broker: {broker.description}", flush=True)
		yield broker.bootstrap_servers


@contextmanager
def site_kafka(bootstrap: str, **extra):
	import frappe
	from frappe.installer import update_site_config

	before = frappe.get_site_config().get("kafka")
	from tests.brokers import client_settings

	conf = {
		"bootstrap.servers": bootstrap,
		"client.id": f"bench-{frappe.local.site}",
		**client_settings(),
		**extra,
	}
	update_site_config("kafka", conf)
	frappe.local.conf.kafka = conf
	try:
		yield
	finally:
		update_site_config("kafka", before if before is not None else "None")
		frappe.local.conf.kafka = before


def percentile(values: list[float], p: float) -> float:
	ordered = sorted(values)
	k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
	return ordered[k]


def summary(values: list[float]) -> dict:
	return {
		"n": len(values),
		"median": statistics.median(values),
		"p90": percentile(values, 90),
		"p95": percentile(values, 95),
		"p99": percentile(values, 99),
		"min": min(values),
	}


def write_results(path: str, name: str, rows: list[tuple[str, str]], data: dict) -> None:
	"""Print a two-column table and write ``data`` (plus machine facts) as JSON to ``path``."""
	width = max(len(r[0]) for r in rows)
	print(f"\n{name}")
	print(f"{'measure'.ljust(width)} | value")
	print(f"{'-' * width}-|-{'-' * 30}")
	for label, value in rows:
		print(f"{label.ljust(width)} | {value}")
	out = Path(path)
	out.parent.mkdir(parents=True, exist_ok=True)
	payload = {
		"benchmark": name,
		"when": time.strftime("%Y-%m-%dT%H:%M:%S"),
		"machine": {
			"cpus": os.cpu_count(),
			"python": platform.python_version(),
			"platform": platform.platform(),
		},
		"broker": BROKER[-1] if BROKER else None,
		# benchmarks/run.sh all gives every benchmark of one run the same id: summary.py reads only those
		"run": os.environ.get("SPINE_BENCH_RUN") or None,
		**data,
	}
	out.write_text(json.dumps(payload, indent=2, default=str))
	print(f"\nwritten: {out}")


def start_process(*args: str, site: str | None = None) -> subprocess.Popen:
	"""``bench --site <site> <args>`` (SPINE_SITE by default; ``site=""``: no --site) in its own process group, output to a
	temp file."""
	log = tempfile.NamedTemporaryFile(prefix="spine-bench-", suffix=".log", delete=False)
	proc = subprocess.Popen(
		bench_command(*args, site=os.environ["SPINE_SITE"] if site is None else site),
		cwd=bench_cwd(),
		stdout=log,
		stderr=subprocess.STDOUT,
		start_new_session=True,
	)
	proc.log_path = log.name
	return proc


def stop_process(proc: subprocess.Popen) -> None:
	"""SIGTERM to the process group (the command and its children), SIGKILL after 30 s."""
	if proc.poll() is None:
		os.killpg(proc.pid, signal.SIGTERM)
		try:
			proc.wait(30)
		except subprocess.TimeoutExpired:
			os.killpg(proc.pid, signal.SIGKILL)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		value = predicate()
		if value:
			return value
		time.sleep(interval)
	raise SystemExit(f"benchmark gave up: {what} did not happen within {timeout:.0f}s")


def tree_rss_kb(pid: int) -> int:
	"""Resident memory of ``pid`` and all its descendants, in KiB (Linux /proc)."""
	total = 0
	for p in {pid, *descendants(pid)}:
		try:
			with open(f"/proc/{p}/status") as f:
				total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
		except (OSError, StopIteration):
			pass
	return total


@contextmanager
def procfile_pipeline(
	frappe,
	run: str,
	producer: list[dict],
	consumer: list[dict],
	topics: list[str],
	workers: int,
	metrics: bool = False,
	kafka: dict | None = None,
	admin_conf: dict | None = None,
):
	"""A broker (``local_broker``, or the one ``kafka`` — a kafka block — names, whose topics are made
	with ``admin_conf``) with ``topics`` (3 partitions each), the site's kafka block and config rows on
	it (handling its own messages), and the Procfile processes (spine-relay, jsonworker with
	``workers``, eventdispatcher; with ``metrics``, each serving them on a free port) running until
	the block ends; yields ``(bootstrap, processes)``."""
	from confluent_kafka.admin import AdminClient, NewTopic

	procs: list[subprocess.Popen] = []
	with (
		contextlib.nullcontext(kafka["bootstrap.servers"]) if kafka else local_broker() as bootstrap,
		site_kafka(bootstrap, **{**(kafka or {}), "group.id": f"bench-{run}"}),
		configs(frappe, producer, consumer, test_mode=1),
	):
		admin = AdminClient(admin_conf or {"bootstrap.servers": bootstrap})
		for f in admin.create_topics([NewTopic(t, 3) for t in topics]).values():
			f.result(15)
		queue = f"bench-{run}"
		try:
			procs += [
				start_process("spine-relay", *_metrics_port(metrics)),
				start_process(
					"jsonworker", "--queue", queue, "--numworkers", str(workers), *_metrics_port(metrics)
				),
				start_process("eventdispatcher", "--queue", queue, *_metrics_port(metrics)),
			]
			wait_until(
				lambda: "assigned" in Path(procs[2].log_path).read_text(errors="replace"),
				60,
				"the dispatcher's partition assignment",
			)
			yield bootstrap, procs
		finally:
			for proc in procs:
				stop_process(proc)


def _metrics_port(wanted: bool) -> list[str]:
	if not wanted:
		return []
	import socket

	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		return ["--metrics-port", str(s.getsockname()[1])]


def tree_cpu_seconds(pid: int) -> float:
	"""CPU time (user + system) used so far by ``pid`` and its living descendants (Linux /proc)."""
	tick = os.sysconf("SC_CLK_TCK")
	total = 0
	for p in {pid, *descendants(pid)}:
		try:
			with open(f"/proc/{p}/stat") as f:
				fields = f.read().rsplit(")", 1)[1].split()
			total += int(fields[11]) + int(fields[12])  # utime, stime
		except (OSError, ValueError, IndexError):
			pass
	return total / tick


def service_pids() -> dict[str, list[int]]:
	"""The processes of what Spine stands on, for CPU beside Spine's own: MariaDB, the bench's Redis
	servers, and the broker where the benchmark started it."""
	found: dict[str, list[int]] = {"mariadb": [], "redis": [], "broker": list(BROKER_PIDS)}
	for entry in os.listdir("/proc"):
		if not entry.isdigit():
			continue
		try:
			with open(f"/proc/{entry}/comm") as f:
				name = f.read().strip()
		except OSError:
			continue
		if name in ("mariadbd", "mysqld"):
			found["mariadb"].append(int(entry))
		elif name == "redis-server":
			found["redis"].append(int(entry))
	return found


def services_cpu(pids: dict[str, list[int]]) -> dict[str, float]:
	"""CPU seconds so far of each service of ``service_pids()``."""
	return {name: sum(tree_cpu_seconds(p) for p in group) for name, group in pids.items()}


@contextmanager
def configs(
	frappe, producer: list[dict] | None = None, consumer: list[dict] | None = None, **consumer_fields
):
	"""Set Spine Producer/Consumer Config rows for a benchmark; put the previous ones back afterwards."""

	def rows(doc):
		return [{k: v for k, v in r.as_dict().items() if k not in ("name", "parent")} for r in doc.configs]

	prod, cons = frappe.get_single("Spine Producer Config"), frappe.get_single("Spine Consumer Config")
	saved = (prod.enabled, rows(prod), rows(cons), {k: cons.get(k) for k in consumer_fields})
	try:
		if producer is not None:
			prod.enabled = 1
			prod.set("configs", producer)
			prod.save(ignore_permissions=True)
		if consumer is not None:
			cons.set("configs", consumer)
			cons.update(consumer_fields)
			cons.save(ignore_permissions=True)
		frappe.db.commit()
		yield
	finally:
		frappe.db.rollback()
		prod, cons = frappe.get_single("Spine Producer Config"), frappe.get_single("Spine Consumer Config")
		prod.enabled = saved[0]
		prod.set("configs", saved[1])
		prod.save(ignore_permissions=True)
		cons.set("configs", saved[2])
		cons.update(saved[3])
		cons.save(ignore_permissions=True)
		frappe.db.commit()


def last_log_name(frappe) -> int:
	"""The newest Message Log row now: counting only rows after it stays fast on a big table."""
	return frappe.db.sql("SELECT COALESCE(MAX(name), 0) FROM `tabMessage Log`")[0][0]


def count_log(frappe, after: int, **filters) -> int:
	"""Message Log rows newer than ``after`` matching ``filters`` (equality), read with a fresh snapshot."""
	frappe.db.rollback()
	where = " AND ".join(f"`{k}` = %({k})s" for k in filters)
	return frappe.db.sql(
		f"SELECT COUNT(*) FROM `tabMessage Log` WHERE name > %(after)s{' AND ' + where if where else ''}",
		{"after": after, **filters},
	)[0][0]


def save_to_handler_ms(frappe, topic: str, samples: int, pause: float = 0.2) -> list[float]:
	"""Save → handler milliseconds of ``samples`` ToDos saved on the current site one at a time (a
	Consumer Config row handling ``topic`` with ``spine.demo.record_call``; three more saves warm up first)."""
	from spine import compat
	from spine.demo import CALLS_KEY

	cache = compat.cache()

	def handled_at(message_id: str) -> float | None:
		for entry in cache.lrange(CALLS_KEY, 0, -1):
			mid, when = entry.decode().split()
			if mid == message_id:
				return float(when)
		return None

	def outbound(name: str):
		frappe.db.rollback()
		return frappe.db.get_value(
			"Message Log", {"direction": "Outbound", "document_name": name, "topic": topic}, "message_id"
		)

	found = []
	cache.delete_value(CALLS_KEY)
	for i in range(samples + 3):
		todo = frappe.get_doc({"doctype": "ToDo", "description": f"bwb {i}"}).insert()
		frappe.db.commit()
		committed = time.time()
		message_id = wait_until(lambda: outbound(todo.name), 10, "the outbox row")
		when = wait_until(lambda: handled_at(message_id), 60, f"the handler call for {todo.name}", 0.002)
		if i >= 3:  # the first ones warm up connections and metadata
			found.append((when - committed) * 1000)
		time.sleep(pause)
	return found
