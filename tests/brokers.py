"""Which broker a test session or benchmark runs against, and what a site's kafka block adds for it.

- default: Apache Kafka (one KRaft node from Maven Central's jars, ``tests/apache_kafka``);
- ``SPINE_TEST_BROKER=noida``: the local development broker ``spine-dev`` starts (noida-db);
- ``SPINE_TEST_KAFKA=host:port``: a broker that is already running (of the kind
  ``SPINE_TEST_BROKER`` names, Apache Kafka if unset).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

KIND = os.environ.get("SPINE_TEST_BROKER", "kafka").strip().lower() or "kafka"
if KIND not in ("kafka", "noida"):
	raise SystemExit(
		f"SPINE_TEST_BROKER must be 'kafka' (Apache Kafka) or 'noida' (the local dev broker), not {KIND!r}"
	)


@dataclass(frozen=True)
class Broker:
	bootstrap_servers: str
	description: str  # what the run says it ran against
	pids: tuple[int, ...] = ()  # the broker's processes, where this run started them (CPU is measured)


def client_settings() -> dict[str, Any]:
	"""What a site's ``kafka`` block adds for the session's broker: the local development broker answers
	an empty fetch at once, so its blocks rest between polls as ``spine-dev`` writes them; Apache Kafka
	holds an empty fetch and needs nothing added."""
	if KIND == "noida":
		from spine.kafka.devbroker import CLIENT_SETTINGS

		return dict(CLIENT_SETTINGS)
	return {}


@contextmanager
def running_broker() -> Iterator[Broker]:
	"""The session's broker, started here unless ``SPINE_TEST_KAFKA`` names one; stopped afterwards."""
	external = os.environ.get("SPINE_TEST_KAFKA")
	if external:
		yield Broker(external, f"the broker at {external} (SPINE_TEST_KAFKA, {KIND})")
		return
	if KIND == "noida":
		from spine.kafka.devbroker import PACKAGE, LocalBroker

		local = LocalBroker.start()
		try:
			yield Broker(
				local.bootstrap_servers,
				f"the local development broker ({PACKAGE}) at {local.bootstrap_servers}",
			)
		finally:
			local.stop()
		return
	from tests.apache_kafka.broker import KraftCluster

	cluster = KraftCluster(1).start()
	try:
		yield Broker(
			cluster.bootstrap_servers, cluster.describe(), tuple(n.process.pid for n in cluster.nodes)
		)
	finally:
		cluster.stop()


class OwnBroker:
	"""A broker of the session's kind for one test to stop, SIGKILL and start again on the same port
	with the same data (a broker outage in the middle of a flow)."""

	def __init__(self) -> None:
		import tempfile

		self.data_dir = tempfile.mkdtemp(prefix="spine-own-broker-")
		self.port = 0
		self._local = None
		self._cluster = None
		if KIND == "noida":
			from spine.kafka.devbroker import LocalBroker

			self._local = LocalBroker.start(self.data_dir)
			self.port = int(self._local.bootstrap_servers.rsplit(":", 1)[1])
		else:
			from tests.apache_kafka.broker import KraftCluster

			self._cluster = KraftCluster(1, data_dir=self.data_dir).start()
			self.port = self._cluster.node(1).port
		self.bootstrap_servers = f"127.0.0.1:{self.port}"

	def stop(self) -> None:
		"""A clean shutdown (SIGTERM)."""
		if self._cluster:
			self._cluster.stop_node(1)
		else:
			self._local.stop()

	def kill(self) -> None:
		"""SIGKILL: no clean shutdown, as a crash."""
		if self._cluster:
			self._cluster.kill_node(1)
		else:
			proc, self._local.process = self._local.process, None
			proc.kill()
			proc.wait(10)

	def start(self) -> None:
		"""Start it again on the same port with the same data."""
		if self._cluster:
			self._cluster.start_node(1)
		else:
			from spine.kafka.devbroker import LocalBroker

			self._local = LocalBroker.start(self.data_dir, port=self.port)

	def close(self) -> None:
		import shutil

		if self._cluster:
			self._cluster.stop()
		elif self._local:
			self._local.stop()
		shutil.rmtree(self.data_dir, ignore_errors=True)
