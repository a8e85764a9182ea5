"""Apicurio Registry 3.3.3 for the interop tests: its Quarkus app fetched from Maven Central once
(``io.apicurio:apicurio-registry-app:3.3.3:tar.gz:all`` into ``~/.cache/spine/``), started on a free
port with in-memory storage (its default) on a Java 21+ (``SPINE_JAVA21``, else the newest JDK in
``/usr/lib/jvm`` that is 21 or later). The Confluent-compatible API is ``url`` (``/apis/ccompat/v7``).
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.apache_kafka.broker import KafkaStartError, free_port, maven_fetch

VERSION = "3.3.3"
ARTIFACT = f"io.apicurio:apicurio-registry-app:{VERSION}:tar.gz:all"


def home() -> Path:
	cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
	return cache / "spine" / f"apicurio-registry-{VERSION}"


def ensure_app() -> Path:
	"""The unpacked app (``quarkus-run.jar`` in it), fetched and unpacked once."""
	app = home()
	if (app / "quarkus-run.jar").is_file():
		return app
	archive = maven_fetch(
		app.parent / f"apicurio-registry-{VERSION}-download", lambda d: any(d.glob("*.tar.gz")),
		["dependency:copy", f"-Dartifact={ARTIFACT}"], f"Apicurio Registry {VERSION}",
		"put its unpacked app in " + str(app),
	)  # fmt: skip
	partial = Path(tempfile.mkdtemp(prefix=".apicurio-", dir=app.parent))
	with tarfile.open(next(archive.glob("*.tar.gz"))) as tar:
		tar.extractall(partial, filter="data")
	if not (partial / "quarkus-run.jar").is_file():
		raise KafkaStartError(
			f"the Apicurio archive has no quarkus-run.jar: {sorted(os.listdir(partial))[:10]}"
		)
	partial.rename(app)
	return app


def java21() -> str:
	"""A ``java`` of version 21 or later (Apicurio 3 needs it; the machine's default may be 17)."""
	if os.environ.get("SPINE_JAVA21"):
		return os.environ["SPINE_JAVA21"]
	found = []
	for jdk in Path("/usr/lib/jvm").glob("*"):
		exe = jdk / "bin" / "java"
		if exe.is_file() and (
			m := re.search(r"(\d+)", jdk.name.split("-jdk")[0].replace("java-1.", "java-"))
		):
			found.append((int(m.group(1)), str(exe)))
	found = sorted(v for v in found if v[0] >= 21)
	if not found:
		raise KafkaStartError(
			"Apicurio Registry needs Java 21 or later: install one, or set SPINE_JAVA21 to its java"
		)
	return found[-1][1]


class Apicurio:
	"""A running Apicurio Registry (``start()``, ``stop()``); ``url`` is its Confluent-compatible API."""

	def __init__(self) -> None:
		self.port = free_port()
		# Quarkus serves health and metrics on a management port, 9000 unless told: one of its own, so two
		# registries (a test run beside a benchmark) can run at once
		self.management_port = free_port()
		self.url = f"http://127.0.0.1:{self.port}/apis/ccompat/v7"
		self.process: subprocess.Popen | None = None
		self.log = Path(tempfile.mkstemp(prefix="spine-apicurio-", suffix=".log")[1])

	def start(self, timeout: float = 90) -> Apicurio:
		app = ensure_app()
		self.process = subprocess.Popen(
			[java21(), "-Xmx384m", f"-Dquarkus.http.port={self.port}", "-Dquarkus.http.host=127.0.0.1",
				f"-Dquarkus.management.port={self.management_port}", "-Dquarkus.management.host=127.0.0.1",
				"-jar", str(app / "quarkus-run.jar")],
			cwd=app, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
		)  # fmt: skip
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			if self.process.poll() is not None:
				raise KafkaStartError(f"Apicurio Registry exited at start: {self.log.read_text()[-2000:]}")
			try:
				with urllib.request.urlopen(f"{self.url}/subjects", timeout=2):
					return self
			except OSError:
				time.sleep(0.3)
		self.stop()
		raise KafkaStartError(
			f"Apicurio Registry did not answer within {timeout:.0f}s: {self.log.read_text()[-2000:]}"
		)

	def stop(self) -> None:
		if self.process is not None and self.process.poll() is None:
			self.process.terminate()
			try:
				self.process.wait(20)
			except subprocess.TimeoutExpired:
				self.process.kill()
				self.process.wait(10)
		self.process = None

	def kill(self) -> None:
		if self.process is not None:
			self.process.kill()
			self.process.wait(10)
			self.process = None
