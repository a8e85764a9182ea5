"""Helpers for Frappe-side tests: site config, bench processes, topic reading, polling."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

BENCH = os.environ.get("SPINE_BENCH", "")
SITE = os.environ.get("SPINE_SITE", "")
# MariaDB account that may create and drop sites' databases (bench new-site/drop-site)
DB_ROOT_USER = os.environ.get("SPINE_DB_ROOT_USER", "root")
DB_ROOT_PASSWORD = os.environ.get("SPINE_DB_ROOT_PASSWORD", "")
DB_ROOT_ARGS = ["--db-root-username", DB_ROOT_USER] + (
	["--db-root-password", DB_ROOT_PASSWORD] if DB_ROOT_PASSWORD else []
)


def wait_for(
	predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition"
) -> Any:
	"""Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
	deadline = time.monotonic() + timeout
	while True:
		value = predicate()
		if value:
			return value
		if time.monotonic() > deadline:
			raise AssertionError(
				f"timed out after {timeout}s waiting for {what() if callable(what) else what}"
			)
		time.sleep(interval)


@contextmanager
def site_kafka(bootstrap: str, **extra: Any):
	"""Point the site's ``kafka`` block at ``bootstrap`` for the duration; restore it afterwards."""
	import frappe
	from frappe.installer import update_site_config

	before = frappe.get_site_config().get("kafka")
	from tests.brokers import client_settings

	conf = {"bootstrap.servers": bootstrap, "client.id": f"spine-test-{SITE}", **client_settings(), **extra}
	update_site_config("kafka", conf)
	frappe.local.conf.kafka = conf
	try:
		yield conf
	finally:
		update_site_config("kafka", before if before is not None else "None")
		frappe.local.conf.kafka = before


def redis_cache():
	"""The site's Redis cache on any Frappe version (``frappe.cache`` on v15+, ``frappe.cache()`` on v14)."""
	from spine import compat

	return compat.cache()


def bench_command(*args: str, site: str | None = None) -> list[str]:
	"""The command line of ``bench --site SITE ARGS`` on the bench SPINE_BENCH names, run from its
	``sites`` folder (``BENCH_CWD``): the bench's own Python runs Frappe's command line, as the bench
	CLI does, so no ``bench`` needs to be on PATH. Without ``--site`` when ``site`` is ``""``."""
	bench = os.environ.get("SPINE_BENCH", BENCH)
	chosen = SITE if site is None else site
	return [
		os.path.join(bench, "env", "bin", "python"), "-m", "frappe.utils.bench_helper", "frappe",
		*(["--site", chosen] if chosen else []), *args,
	]  # fmt: skip


def bench_cwd() -> str:
	"""Where ``bench_command`` runs: the bench's ``sites`` folder."""
	return os.path.join(os.environ.get("SPINE_BENCH", BENCH), "sites")


def bench_run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
	"""Run a bench command; a MariaDB root password prompt is answered from SPINE_DB_ROOT_PASSWORD."""
	return subprocess.run(
		bench_command(*args, site=""),
		cwd=bench_cwd(),
		capture_output=True,
		text=True,
		timeout=timeout,
		input=(os.environ.get("SPINE_DB_ROOT_PASSWORD", "") + "\n") * 2,  # answers a root password prompt
	)


def in_other_process(code: str, site: str | None = None, timeout: int = 120) -> Any:
	"""Run ``code`` (Python, with ``frappe`` imported and connected to ``site``) in a new process of the
	bench, commit, and return what the code left in ``result`` (as JSON)."""
	script = (
		"import json, sys, frappe\n"
		"frappe.init(site=sys.argv[1], sites_path='.')\nfrappe.connect()\nfrappe.set_user('Administrator')\n"
		"result = None\n"
		+ code
		+ "\nfrappe.db.commit()\nprint('RESULT ' + json.dumps(result, default=str))\n"
	)
	python = os.path.join(os.environ.get("SPINE_BENCH", BENCH), "env", "bin", "python")
	done = subprocess.run(
		[python, "-c", script, site or SITE], cwd=bench_cwd(), capture_output=True, text=True, timeout=timeout
	)
	lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
	assert done.returncode == 0 and lines, f"the other process failed: {done.stderr[-3000:]}"
	import json

	return json.loads(lines[-1].removeprefix("RESULT "))


def unique(prefix: str) -> str:
	return f"{prefix}-{uuid.uuid4().hex[:8]}"


_LOGS: list[str] = []


def logs_dir() -> str:
	"""This test run's folder for the bench processes' output (removed at the end of a run that passed;
	a failed run names it)."""
	if not _LOGS:
		_LOGS.append(tempfile.mkdtemp(prefix="spine-test-logs-"))
	return _LOGS[0]


class CheckedThread:
	"""A thread for a test's helper work (a fault, a flow) whose failure fails the test: ``join()``
	raises what the target raised, and fails if it has not ended within ``timeout``."""

	def __init__(self, target: Callable[[], Any], name: str = "helper"):
		import threading

		self.target, self.name = target, name
		self.error: BaseException | None = None
		self.thread = threading.Thread(target=self._run, name=name, daemon=True)

	def _run(self) -> None:
		try:
			self.target()
		except BaseException as e:
			self.error = e

	def start(self) -> CheckedThread:
		self.thread.start()
		return self

	def join(self, timeout: float) -> None:
		self.thread.join(timeout)
		assert not self.thread.is_alive(), f"{self.name} did not end within {timeout:.0f}s"
		if self.error is not None:
			raise AssertionError(f"{self.name} failed: {self.error!r}") from self.error


class BenchProcess:
	"""A ``bench --site SITE ...`` process of the SPINE_BENCH bench (``site=""``: without ``--site``),
	output in a temp file."""

	started: list[BenchProcess] = []  # every one, so a test module that leaves one running is caught

	def __init__(self, *args: str, site: str | None = None):
		self.args = args
		BenchProcess.started.append(self)
		self.log = tempfile.NamedTemporaryFile(
			prefix="spine-proc-", suffix=".log", delete=False, dir=logs_dir()
		)
		self.proc = subprocess.Popen(
			bench_command(*args, site=site),
			cwd=bench_cwd(),
			stdout=self.log,
			stderr=subprocess.STDOUT,
			start_new_session=True,
		)

	def output(self) -> str:
		with open(self.log.name, errors="replace") as f:
			return f.read()

	def signal(self, sig: int) -> None:
		"""Send ``sig`` to the whole process group (bench CLI, python, and its children)."""
		if self.proc.poll() is None:
			with contextlib.suppress(ProcessLookupError):
				os.killpg(self.proc.pid, sig)

	def stop(self, timeout: float = 30) -> int:
		"""SIGTERM, as supervisor would; whatever is still running after ``timeout`` s is killed."""
		tree = descendants(self.proc.pid)
		self.signal(signal.SIGTERM)
		try:
			code = self.proc.wait(timeout)
		except subprocess.TimeoutExpired:
			self.kill()
			return -9
		deadline = time.monotonic() + timeout
		while [p for p in tree if running(p)] and time.monotonic() < deadline:
			time.sleep(0.2)
		for pid in [p for p in tree if running(p)]:
			with contextlib.suppress(ProcessLookupError):
				os.kill(pid, signal.SIGKILL)
		with contextlib.suppress(ProcessLookupError):
			os.killpg(self.proc.pid, signal.SIGKILL)  # anything of the command's group still there
		return code

	def kill(self) -> None:
		"""SIGKILL every process of the command, children in their own process groups included."""
		tree = descendants(self.proc.pid)
		with contextlib.suppress(ProcessLookupError):
			self.signal(signal.SIGKILL)
		for pid in tree:
			with contextlib.suppress(ProcessLookupError):
				os.kill(pid, signal.SIGKILL)
		self.proc.wait(10)


def running(pid: int) -> bool:
	"""Whether process ``pid`` exists and is not a zombie (Linux /proc)."""
	try:
		with open(f"/proc/{pid}/stat") as f:
			return f.read().rsplit(")", 1)[1].split()[0] != "Z"
	except OSError:
		return False


def descendants(pid: int) -> set[int]:
	"""Every process below ``pid`` (Linux /proc)."""
	children: dict[int, list[int]] = {}
	for entry in os.listdir("/proc"):
		if entry.isdigit():
			try:
				with open(f"/proc/{entry}/stat") as f:
					ppid = int(f.read().rsplit(")", 1)[1].split()[1])
			except (OSError, ValueError, IndexError):
				continue
			children.setdefault(ppid, []).append(int(entry))
	found, todo = set(), [pid]
	while todo:
		for child in children.get(todo.pop(), []):
			found.add(child)
			todo.append(child)
	return found


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 60, exact_wait: float = 2.0) -> list:
	"""Every message of ``topic`` (at least ``count``; then waits ``exact_wait`` more for extras)."""
	from confluent_kafka import Consumer

	c = Consumer(
		{"bootstrap.servers": bootstrap, "group.id": unique("reader"), "auto.offset.reset": "earliest"}
	)
	c.subscribe([topic])
	got: list = []
	deadline = time.monotonic() + timeout
	try:
		while len(got) < count and time.monotonic() < deadline:
			got += [m for m in c.consume(500, 0.5) if m.error() is None]
		extra_deadline = time.monotonic() + exact_wait
		while time.monotonic() < extra_deadline:
			got += [m for m in c.consume(500, 0.2) if m.error() is None]
	finally:
		c.close()
	return got


def produce(bootstrap: str, topic: str, items: list[tuple[str | None, bytes, list | None]]) -> None:
	"""Produce ``(key, value, headers)`` items and wait for every delivery."""
	from confluent_kafka import Producer

	p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
	errors = []
	for key, value, headers in items:
		p.produce(
			topic,
			value=value,
			key=key,
			headers=headers or [],
			on_delivery=lambda e, m: e and errors.append(e),
		)
		p.poll(0)
	assert p.flush(30) == 0 and not errors, errors


def restore_single(doctype: str, saved: dict, fields: tuple[str, ...] = ()) -> None:
	"""Put a config single back as ``saved`` (its ``configs`` rows and ``fields``) and commit."""
	import frappe

	doc = frappe.get_single(doctype)
	doc.set(
		"configs",
		[
			{k: v for k, v in r.items() if k not in ("name", "parent", "creation", "modified")}
			for r in saved["configs"]
		],
	)
	for f in fields:
		doc.set(f, saved.get(f))
	doc.save(ignore_permissions=True)
	frappe.db.commit()


def assert_key_order(msgs: list, rows: list) -> None:
	"""Per Kafka key, the messages' order in Kafka is the rows' capture order."""
	import json

	for key in {r.kafka_key for r in rows}:
		in_kafka = [
			json.loads(m.value())["Header"]["MessageId"]
			for m in sorted(msgs, key=lambda m: m.offset())
			if m.key().decode() == key
		]
		assert in_kafka == [r.message_id for r in rows if r.kafka_key == key], key


def as_records(topic: str, envs: list) -> list[dict]:
	"""Dispatcher-style records (partition 0, consecutive offsets) for envelopes."""
	from spine import envelope

	return [
		{
			"topic": topic,
			"partition": 0,
			"offset": i,
			"key": e.key,
			"value": envelope.encode(e).decode(),
			"value_b64": False,
		}
		for i, e in enumerate(envs)
	]


def ensure_user(email: str, role: str) -> str:
	"""A test user with exactly this role, kept between runs (Frappe refuses to delete the last System
	Manager). Frappe makes any enabled user a System Manager while no other user is one (the first user
	of a fresh site), so a test System Manager is made first."""
	import frappe

	if role != "System Manager":
		ensure_user("spine-system-manager@example.com", "System Manager")
	if not frappe.db.exists("User", email):
		user = frappe.get_doc(
			{"doctype": "User", "email": email, "first_name": "Spine", "send_welcome_email": 0}
		)
		user.append("roles", {"role": role})
		user.insert(ignore_permissions=True)
	user = frappe.get_doc("User", email)
	extra = [r.role for r in user.roles if r.role != role]
	if extra:
		user.remove_roles(*extra)
	if role not in frappe.get_roles(email):
		user.add_roles(role)
	frappe.db.commit()
	return email


def spine_message(topic: str, doctype: str, name: str, payload: dict | None = None, event: str = "on_update"):
	"""A Spine envelope from another site, and the (key, value, headers) to produce it."""
	from spine import envelope

	env = envelope.build(
		doctype=doctype,
		docname=name,
		event=event,
		topic=topic,
		payload={"name": name, **(payload or {})},
		origin="other-site",
		origin_site="other.site",
	)
	return env, (env.key, envelope.encode(env), env.headers())


def inbound(topic: str) -> list:
	import frappe

	frappe.db.rollback()
	return frappe.get_all(
		"Message Log",
		filters={"direction": "Inbound", "topic": topic},
		fields=[
			"name",
			"status",
			"message_id",
			"document_name",
			"document_type",
			"kafka_partition",
			"kafka_offset",
			"attempts",
			"last_error",
			"event",
		],
		order_by="name",
	)


def calls() -> list[str]:
	import frappe

	from spine.demo import CALLS_KEY

	return [c.decode().split()[0] for c in redis_cache().lrange(CALLS_KEY, 0, -1)]


class Pipeline:
	"""eventdispatcher + jsonworker as real bench processes."""

	def __init__(self, queue: str, dispatchers: int = 1, workers: int = 1):
		self.queue = queue
		self.dispatcher = BenchProcess("eventdispatcher", "--queue", queue, "--numworkers", str(dispatchers))
		self.worker = BenchProcess("jsonworker", "--queue", queue, "--numworkers", str(workers))

	def stop(self) -> None:
		self.dispatcher.stop()
		self.worker.stop()

	def logs(self) -> str:
		return (
			f"--- dispatcher\n{self.dispatcher.output()[-3000:]}\n--- worker\n{self.worker.output()[-3000:]}"
		)


@contextmanager
def on_site(site: str):
	"""Work on ``site`` inside the block (this process's Frappe context switches), then back."""
	import frappe

	home = frappe.local.site
	sites_path = frappe.local.sites_path
	if site == home:
		yield
		return
	frappe.db.commit()
	frappe.destroy()
	frappe.init(site=site, sites_path=sites_path)
	frappe.connect()
	frappe.set_user("Administrator")
	try:
		yield
	finally:
		frappe.db.commit()
		frappe.destroy()
		frappe.init(site=home, sites_path=sites_path)
		frappe.connect()
		frappe.set_user("Administrator")


class Courier:
	"""Carries messages of ``topics`` from Kafka into the current site's Message Log and handles them,
	in this process: the dispatcher's and jsonworker's job without their processes (those are tested
	on their own), so tests between two sites can say exactly when a site receives."""

	def __init__(self, bootstrap: str, topics: list[str]):
		from confluent_kafka import Consumer

		self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("courier"),
			"auto.offset.reset": "earliest", "enable.auto.commit": False,
			"topic.metadata.refresh.interval.ms": 1000})  # fmt: skip
		self.consumer.subscribe(topics)
		self.delivered = 0

	def deliver(self, expect: int | None = None, timeout: float = 30, quiet: float = 1.5) -> int:
		"""Store and handle what arrives (at least ``expect`` messages, then until ``quiet`` s pass
		without one); returns how many messages were delivered."""
		import frappe

		from spine.consumer import intake, processor
		from spine.kafka.poll_loop import to_record

		got, deadline, last = [], time.monotonic() + timeout, time.monotonic()
		while time.monotonic() < deadline:
			batch = [m for m in self.consumer.consume(500, 0.3) if m.error() is None]
			if batch:
				got += batch
				last = time.monotonic()
			elif (expect is None or len(got) >= expect) and time.monotonic() - last > quiet:
				break
		if got:
			intake.store([to_record(m) for m in got])
			frappe.db.commit()
			processor.process(max_seconds=60)
		self.delivered += len(got)
		return len(got)

	def close(self) -> None:
		self.consumer.close()


class OwnRedis:
	"""A redis-server of the test's own on a free port, persisting as the ``redis_queue.conf`` that bench
	generates does (Redis' default RDB save points, no AOF), so killing it loses what a real one would."""

	def __init__(self):
		import socket

		self.dir = tempfile.mkdtemp(prefix="spine-redis-")
		with socket.socket() as s:
			s.bind(("127.0.0.1", 0))
			self.port = s.getsockname()[1]
		self.url = f"redis://127.0.0.1:{self.port}"
		self.proc: subprocess.Popen | None = None
		self.start()

	def start(self) -> None:
		self.proc = subprocess.Popen(
			["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
				"--dbfilename", "redis_queue.rdb", "--appendonly", "no"],
			stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
		)  # fmt: skip
		wait_for(self._answers, 20, what=f"redis-server on port {self.port}")

	def _answers(self) -> bool:
		try:
			return bool(self.conn().ping())
		except Exception:
			return False

	def conn(self):
		import redis

		return redis.Redis.from_url(self.url, socket_timeout=5)

	def kill(self) -> None:
		"""SIGKILL, as the OOM killer or a host crash would."""
		self.proc.kill()
		self.proc.wait(10)

	def stop(self) -> None:
		if self.proc and self.proc.poll() is None:
			self.proc.terminate()
			self.proc.wait(10)
		import shutil

		shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def bench_redis_queue(url: str):
	"""Point the bench's ``redis_queue`` (common_site_config.json) at ``url`` for the block."""
	import frappe
	from frappe.installer import update_site_config
	from frappe.utils import background_jobs

	path = os.path.join(bench_cwd(), "common_site_config.json")
	before = frappe.get_conf().get("redis_queue")
	update_site_config("redis_queue", url, site_config_path=path)
	frappe.local.conf.redis_queue = url
	background_jobs._redis_queue_conn = None  # Frappe keeps one connection per process
	try:
		yield
	finally:
		update_site_config("redis_queue", before, site_config_path=path)
		frappe.local.conf.redis_queue = before
		background_jobs._redis_queue_conn = None


class ConnectionKiller:
	"""``KILL`` every database connection of the site's user but this process's own, every ``every``
	seconds for ``seconds`` seconds, in a thread (what a MariaDB restart, failover or proxy does)."""

	def __init__(self, seconds: float, every: float = 0.7):
		import threading

		import frappe
		import pymysql

		self.user = frappe.conf.db_user or frappe.conf.db_name
		self.mine = frappe.db.sql("SELECT CONNECTION_ID()")[0][0]
		self.root = pymysql.connect(
			host=frappe.conf.db_host or "127.0.0.1", port=int(frappe.conf.db_port or 3306),
			user=os.environ.get("SPINE_DB_ROOT_USER", "root"),
			password=os.environ.get("SPINE_DB_ROOT_PASSWORD", ""), autocommit=True,
		)  # fmt: skip
		self.seconds, self.every = seconds, every
		self.killed = 0
		self.ended_at: float | None = None
		self.began = threading.Event()  # set once the first round of KILLs is done
		self.error: BaseException | None = None
		self.thread = threading.Thread(target=self._run, daemon=True)

	def __enter__(self) -> ConnectionKiller:
		self.thread.start()
		return self

	def __exit__(self, *exc) -> None:
		self.thread.join(self.seconds + 30)
		self.root.close()
		if exc[0] is None:
			assert not self.thread.is_alive(), "the connection killer did not stop"
			if self.error is not None:
				raise AssertionError(f"the connection killer failed: {self.error!r}") from self.error

	def kill_once(self) -> int:
		"""``KILL`` every connection of the site's user but this process's own, now; returns how many."""
		killed = 0
		with self.root.cursor() as cur:
			cur.execute(
				"SELECT id FROM information_schema.PROCESSLIST WHERE user = %s AND id != %s",
				(self.user, self.mine),
			)
			for (conn_id,) in cur.fetchall():
				with contextlib.suppress(Exception):
					cur.execute(f"KILL {int(conn_id)}")
					killed += 1
		self.killed += killed
		return killed

	def close(self) -> None:
		self.root.close()

	def _run(self) -> None:
		try:
			end = time.monotonic() + self.seconds
			while time.monotonic() < end:
				self.kill_once()
				self.began.set()
				time.sleep(self.every)
		except BaseException as e:
			self.error = e
		finally:
			self.began.set()
			self.ended_at = time.monotonic()


def comments_per_message(ids: list[str]) -> dict[str, int]:
	"""How many ``spine.demo.add_comment`` Comments each message id has (its effect, counted)."""
	import frappe

	frappe.db.rollback()
	counts = {i: 0 for i in ids}
	for start in range(0, len(ids), 1000):
		chunk = [f"spine-demo {i}" for i in ids[start : start + 1000]]
		for content, n in frappe.db.sql(
			"SELECT content, COUNT(*) FROM `tabComment` WHERE reference_doctype = 'ToDo' AND content IN %s "
			"GROUP BY content",
			(tuple(chunk),),
		):
			counts[content.removeprefix("spine-demo ")] = n
	return counts


def statuses(topic: str) -> dict[str, int]:
	"""Inbound Message Log rows of ``topic`` by status."""
	import frappe

	frappe.db.rollback()
	return dict(
		frappe.db.sql(
			"SELECT status, COUNT(*) FROM `tabMessage Log` WHERE direction = 'Inbound' AND topic = %s "
			"GROUP BY status",
			(topic,),
		)
	)
