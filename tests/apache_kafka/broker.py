"""Apache Kafka brokers for tests and benchmarks: KRaft nodes run from Maven Central's jars.

``KraftCluster(nodes=1)`` is one combined broker + controller; ``nodes=3`` is three of them on
loopback, each with its own ports, log dir and JVM, with the replication settings of a production
cluster (``default.replication.factor=3``, ``min.insync.replicas=2``). Any node can be SIGKILLed,
stopped and started again by id. The jars come from ``pom.xml`` beside this file, fetched once with
``mvn dependency:copy-dependencies`` into a cache (``SPINE_KAFKA_JARS``, default
``~/.cache/spine/apache-kafka-<version>``). Nothing here imports Frappe or Spine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"

# JVM settings of Kafka's own kafka-run-class.sh (G1, short pauses), with a heap sized for a 2-core,
# 24 GB machine that also runs MariaDB, Redis and the Frappe processes under test
JVM_OPTS = ["-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
	"-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true"]  # fmt: skip
HEAP_MB = {1: 768, 3: 512}

STARTED_LINE = "Kafka Server started"


class KafkaStartError(RuntimeError):
	"""A broker could not be started; the message says why and where its log is."""


def kafka_version() -> str:
	"""The Apache Kafka version ``pom.xml`` asks for."""
	found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
	if not found:
		raise KafkaStartError(f"{POM} names no <kafka.version>")
	return found.group(1).strip()


def jars_dir() -> Path:
	"""Where the broker's jars are kept: ``SPINE_KAFKA_JARS``, or a cache folder per version."""
	if os.environ.get("SPINE_KAFKA_JARS"):
		return Path(os.environ["SPINE_KAFKA_JARS"])
	cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
	return cache / "spine" / f"apache-kafka-{kafka_version()}"


def ensure_jars() -> Path:
	"""The folder holding the broker's jars, fetched from Maven Central on first use (one fetch at a
	time per machine; a half-finished fetch is never used). Raises ``KafkaStartError`` naming what is
	missing when they cannot be had."""
	return maven_fetch(
		jars_dir(), _complete, ["-f", str(POM), "dependency:copy-dependencies", "-DincludeScope=runtime"],
		f"Apache Kafka {kafka_version()}",
		f"set SPINE_KAFKA_JARS to a folder with kafka_2.13-{kafka_version()}.jar and its dependencies",
	)  # fmt: skip


def maven_fetch(target: Path, complete, goal: list[str], what: str, otherwise: str) -> Path:
	"""``target``, filled by ``mvn <goal> -DoutputDirectory=...`` from Maven Central once: one fetch at a
	time per machine, and a half-finished one never used (``complete(folder)`` says when it is whole).
	Raises ``KafkaStartError`` saying what is missing and ``otherwise`` what to do instead."""
	if complete(target):
		return target
	target.parent.mkdir(parents=True, exist_ok=True)
	with open(target.parent / f".{target.name}.lock", "w") as lock:
		fcntl.flock(lock, fcntl.LOCK_EX)
		if complete(target):
			return target
		mvn = shutil.which("mvn")
		if not mvn:
			raise KafkaStartError(
				f"{what} is not cached and Maven (mvn) is not installed to fetch it: install Maven, or {otherwise}"
			)
		partial = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
		done = subprocess.run(
			[mvn, "-q", "-B", *goal, f"-DoutputDirectory={partial}"], capture_output=True, text=True
		)
		if done.returncode != 0 or not complete(partial):
			shutil.rmtree(partial, ignore_errors=True)
			raise KafkaStartError(
				f"fetching {what} from Maven Central failed: " + (done.stdout + done.stderr).strip()[-1500:]
			)
		shutil.rmtree(target, ignore_errors=True)
		partial.rename(target)
	return target


def _complete(folder: Path) -> bool:
	return (folder / f"kafka_2.13-{kafka_version()}.jar").is_file() and (
		folder / f"kafka-clients-{kafka_version()}.jar"
	).is_file()


def java() -> str:
	"""The ``java`` to run the broker with (``JAVA_HOME`` first); Kafka 4 brokers need Java 17+."""
	home = os.environ.get("JAVA_HOME")
	path = str(Path(home) / "bin" / "java") if home else shutil.which("java")
	if not path or not os.access(path, os.X_OK):
		raise KafkaStartError("no java found (set JAVA_HOME or put java on PATH); Kafka needs Java 17+")
	return path


def free_port() -> int:
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


@dataclass
class KraftNode:
	"""One combined broker + controller process of a ``KraftCluster``."""

	node_id: int
	port: int  # the client listener (what bootstrap.servers names)
	controller_port: int
	dir: Path
	props: dict[str, Any] = field(default_factory=dict)
	process: subprocess.Popen | None = None
	_started_mark: int = 0  # size of server.log when this start began

	@property
	def log_file(self) -> Path:
		return self.dir / "server.log"

	@property
	def running(self) -> bool:
		return self.process is not None and self.process.poll() is None

	def launch(self, jars: Path, heap_mb: int) -> None:
		"""Start the JVM (``wait_started`` waits for it to serve)."""
		if self.running:
			return
		self.dir.mkdir(parents=True, exist_ok=True)
		(self.dir / "server.properties").write_text(_properties(self.props))
		(self.dir / "log4j2.properties").write_text(_LOG4J.format(log=self.log_file))
		self._started_mark = self.log_file.stat().st_size if self.log_file.exists() else 0
		self.process = subprocess.Popen(
			[java(), f"-Xms{min(heap_mb, 256)}m", f"-Xmx{heap_mb}m", *JVM_OPTS,
				f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
				f"-Dkafka.logs.dir={self.dir}", "-cp", f"{jars}/*", "kafka.Kafka",
				str(self.dir / "server.properties")],
			stdout=open(self.dir / "stdout.log", "ab"), stderr=subprocess.STDOUT,
			start_new_session=True,
		)  # fmt: skip

	def wait_started(self, timeout: float) -> None:
		"""Return once this start logged ``Kafka Server started``; raise if the process ended first."""
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			if self.process is None or self.process.poll() is not None:
				raise KafkaStartError(f"Kafka node {self.node_id} exited at start: {self.tail()}")
			if self.log_file.exists():
				with open(self.log_file, "rb") as f:
					f.seek(self._started_mark)
					if STARTED_LINE.encode() in f.read():
						return
			time.sleep(0.1)
		raise KafkaStartError(f"Kafka node {self.node_id} did not start within {timeout:.0f}s: {self.tail()}")

	def stop(self, timeout: float = 30) -> None:
		"""SIGTERM (Kafka's controlled shutdown: leadership moves first), SIGKILL after ``timeout``."""
		proc, self.process = self.process, None
		if proc is None or proc.poll() is not None:
			return
		proc.send_signal(signal.SIGTERM)
		try:
			proc.wait(timeout)
		except subprocess.TimeoutExpired:
			proc.kill()
			proc.wait(10)

	def kill(self) -> None:
		"""SIGKILL, as a host crash or the OOM killer would: no controlled shutdown."""
		proc, self.process = self.process, None
		if proc is not None and proc.poll() is None:
			proc.kill()
			proc.wait(10)

	def tail(self, lines: int = 15) -> str:
		for path in (self.log_file, self.dir / "stdout.log"):
			if path.exists():
				text = path.read_text(errors="replace").strip().splitlines()
				errors = [line for line in text if " ERROR " in line or "Exception" in line]
				return " | ".join((errors or text)[-lines:])
		return "no log written"


class KraftCluster:
	"""``nodes`` Apache Kafka KRaft nodes on loopback (each broker and controller at once).

	``broker_props`` override or add server properties on every node. The data lives in ``data_dir``
	(a new temporary folder, removed on ``stop``, when not given); a given folder that was formatted
	before is started as it is, so a broker keeps its topics across restarts of the command.
	"""

	def __init__(
		self,
		nodes: int = 1,
		*,
		broker_props: Mapping[str, Any] | None = None,
		data_dir: str | Path | None = None,
		port: int | None = None,
		heap_mb: int | None = None,
	):
		if nodes < 1:
			raise ValueError("a cluster needs at least one node")
		self.size = nodes
		self.temporary = data_dir is None
		self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="spine-kafka-"))
		self.heap_mb = heap_mb or HEAP_MB.get(nodes, 512)
		self.version = kafka_version()
		self.jars: Path | None = None
		ports = [port or free_port()] + [free_port() for _ in range(nodes - 1)]
		self.nodes = [
			KraftNode(
				node_id=i + 1, port=ports[i], controller_port=free_port(), dir=self.data_dir / f"node-{i + 1}"
			)
			for i in range(nodes)
		]
		voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
		replicas = min(nodes, 3)
		for n in self.nodes:
			n.props = {
				"process.roles": "broker,controller",
				"node.id": n.node_id,
				"controller.quorum.voters": voters,
				"listeners": f"PLAINTEXT://127.0.0.1:{n.port},CONTROLLER://127.0.0.1:{n.controller_port}",
				"advertised.listeners": f"PLAINTEXT://127.0.0.1:{n.port}",
				"controller.listener.names": "CONTROLLER",
				"inter.broker.listener.name": "PLAINTEXT",
				"listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
				"log.dirs": str(n.dir / "data"),
				# as Kafka's shipped config/server.properties, with replication fitting the cluster
				"num.partitions": 1,
				"num.recovery.threads.per.data.dir": 1,
				"offsets.topic.replication.factor": replicas,
				"share.coordinator.state.topic.replication.factor": replicas,
				"share.coordinator.state.topic.min.isr": min(replicas, 2),
				"transaction.state.log.replication.factor": replicas,
				"transaction.state.log.min.isr": min(replicas, 2),
				"default.replication.factor": replicas,
				"min.insync.replicas": min(replicas, 2),
				"group.initial.rebalance.delay.ms": 0,
				**(broker_props or {}),
			}

	@property
	def bootstrap_servers(self) -> str:
		return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

	def describe(self) -> str:
		"""``Apache Kafka 4.4.0 (KRaft, 1 node) at 127.0.0.1:PORT``: what tests ran against."""
		return (
			f"Apache Kafka {self.version} (KRaft, {self.size} node{'s' if self.size > 1 else ''}) "
			f"at {self.bootstrap_servers}"
		)

	def node(self, node_id: int) -> KraftNode:
		return self.nodes[node_id - 1]

	def start(self, timeout: float = 90) -> KraftCluster:
		"""Fetch the jars if needed, format every node's storage once, start them all and return when
		each serves."""
		self.jars = ensure_jars()
		cluster_id = self._cluster_id()
		for n in self.nodes:
			if not (n.dir / "data" / "meta.properties").exists():
				self._format(n, cluster_id)
		try:
			for n in self.nodes:
				n.launch(self.jars, self.heap_mb)
			for n in self.nodes:
				n.wait_started(timeout)
		except BaseException:
			self.stop()
			raise
		return self

	def _cluster_id(self) -> str:
		marker = self.data_dir / "cluster.id"
		if marker.exists():
			return marker.read_text().strip()
		# KRaft cluster ids are 16 random bytes, base64url without padding (what random-uuid prints)
		import base64

		cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
		self.data_dir.mkdir(parents=True, exist_ok=True)
		marker.write_text(cid)
		return cid

	def _format(self, n: KraftNode, cluster_id: str) -> None:
		n.dir.mkdir(parents=True, exist_ok=True)
		props = n.dir / "server.properties"
		props.write_text(_properties(n.props))
		(n.dir / "log4j2.properties").write_text(_LOG4J.format(log=n.dir / "format.log"))
		done = subprocess.run(
			[java(), "-Xmx256m", f"-Dlog4j2.configurationFile={n.dir / 'log4j2.properties'}",
				"-cp", f"{self.jars}/*", "kafka.tools.StorageTool", "format", "--ignore-formatted",
				f"--cluster-id={cluster_id}", "-c", str(props), *self.format_args(n)],
			capture_output=True, text=True,
		)  # fmt: skip
		if done.returncode != 0:
			raise KafkaStartError(
				f"formatting Kafka node {n.node_id} failed: {(done.stdout + done.stderr)[-1500:]}"
			)

	def format_args(self, node: KraftNode) -> list[str]:
		"""Extra ``kafka-storage format`` arguments for ``node`` (SCRAM users, in subclasses)."""
		return []

	def stop_node(self, node_id: int, timeout: float = 30) -> None:
		self.node(node_id).stop(timeout)

	def kill_node(self, node_id: int) -> None:
		self.node(node_id).kill()

	def start_node(self, node_id: int, timeout: float = 90) -> None:
		n = self.node(node_id)
		n.launch(self.jars or ensure_jars(), self.heap_mb)
		n.wait_started(timeout)

	def stop(self) -> None:
		"""Stop every node (controlled shutdown, in parallel), then drop a temporary data folder."""
		for n in self.nodes:
			if n.running:
				with contextlib.suppress(Exception):
					n.process.send_signal(signal.SIGTERM)
		for n in self.nodes:
			n.stop(timeout=30)
		if self.temporary:
			shutil.rmtree(self.data_dir, ignore_errors=True)


def _properties(props: Mapping[str, Any]) -> str:
	def text(value: Any) -> str:
		return str(value).lower() if isinstance(value, bool) else str(value)

	return "".join(f"{k}={text(v)}\n" for k, v in props.items())


_LOG4J = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = warn
"""
