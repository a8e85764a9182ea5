"""A standalone Kafka Connect worker for the interop tests: ``FileStreamSink`` with ``JsonConverter``
(``schemas.enable=false``) landing a topic in a file, one record a line (optionally one field of each
value, Connect's ``ExtractField`` transform), as a warehouse loader would read it. FileStreamSink writes
a record's value as Java prints it (a map: ``{name=T-1, qty=3}``). Its jars (``pom-connect.xml``) come from Maven Central once, into ``~/.cache/spine/``."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from tests.apache_kafka.broker import java, maven_fetch

POM = Path(__file__).with_name("pom-connect.xml")
CONNECT_VERSION = re.search(r"<kafka.version>(.+?)</kafka.version>", POM.read_text()).group(1)


def jars() -> Path:
	cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
	return maven_fetch(
		cache / "spine" / f"kafka-connect-{CONNECT_VERSION}",
		lambda d: any(d.glob("connect-runtime-*.jar")) and any(d.glob("connect-file-*.jar")),
		["-f", str(POM), "dependency:copy-dependencies", "-DincludeScope=runtime"],
		"Kafka Connect",
		"set XDG_CACHE_HOME to a folder holding spine/kafka-connect-<version> with its jars",
	)


class FileSink:
	"""``connect-standalone`` with one FileStreamSink connector of ``topic`` into ``self.file``."""

	def __init__(self, bootstrap: str, topic: str, extract_field: str | None = None):
		self.dir = Path(tempfile.mkdtemp(prefix="spine-connect-"))
		self.file = self.dir / "sink.jsonl"
		self.file.touch()
		(self.dir / "worker.properties").write_text(
			f"bootstrap.servers={bootstrap}\n"
			"key.converter=org.apache.kafka.connect.storage.StringConverter\n"
			"value.converter=org.apache.kafka.connect.json.JsonConverter\n"
			"value.converter.schemas.enable=false\n"
			f"offset.storage.file.filename={self.dir / 'offsets'}\n"
			"offset.flush.interval.ms=1000\n"
			"listeners=http://127.0.0.1:0\n"
			"plugin.discovery=only_scan\n"
		)
		(self.dir / "sink.properties").write_text(
			"name=spine-file-sink\nconnector.class=org.apache.kafka.connect.file.FileStreamSinkConnector\n"
			f"tasks.max=1\ntopics={topic}\nfile={self.file}\n"
			"consumer.override.auto.offset.reset=earliest\n"
			+ (
				f"transforms=field\ntransforms.field.type=org.apache.kafka.connect.transforms.ExtractField$Value\n"
				f"transforms.field.field={extract_field}\n"
				if extract_field
				else ""
			)
		)
		(self.dir / "log4j2.properties").write_text(
			"rootLogger.level=INFO\nrootLogger.appenderRef.f.ref=f\nappender.f.type=File\nappender.f.name=f\n"
			f"appender.f.fileName={self.dir / 'connect.log'}\nappender.f.layout.type=PatternLayout\n"
			"appender.f.layout.pattern=%d %p %c: %m%n\n"
		)
		self.process: subprocess.Popen | None = None

	def start(self) -> FileSink:
		self.process = subprocess.Popen(
			[java(), "-Xmx384m", f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
				"-cp", f"{jars()}/*", "org.apache.kafka.connect.cli.ConnectStandalone",
				str(self.dir / "worker.properties"), str(self.dir / "sink.properties")],
			stdout=open(self.dir / "stdout.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True,
		)  # fmt: skip
		return self

	def lines(self) -> list[str]:
		return [line for line in self.file.read_text().splitlines() if line.strip()]

	def log(self) -> str:
		text = ""
		for name in ("connect.log", "stdout.log"):
			path = self.dir / name
			if path.exists():
				text += path.read_text(errors="replace")[-3000:]
		return text

	def stop(self) -> None:
		if self.process is not None and self.process.poll() is None:
			self.process.terminate()
			try:
				self.process.wait(30)
			except subprocess.TimeoutExpired:
				self.process.kill()
		self.process = None
