"""Shared fixtures: a real Kafka broker (Apache Kafka, tests/brokers.py), real Redis, and (optionally) a real Frappe site.

Tiers (see tests/README.md):
- tests/unit: pure logic, no services.
- tests/integration: a real broker and real Redis, no Frappe.
- tests/bench: a real Frappe site; runs only when SPINE_BENCH and SPINE_SITE name one.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
	sys.path.insert(0, str(ROOT))

BENCH = os.environ.get("SPINE_BENCH")
SITE = os.environ.get("SPINE_SITE")
SITE2 = os.environ.get("SPINE_SITE2")  # a second site of the same bench, for sync and request/reply


def _bench_unavailable_reason() -> str | None:
	if not BENCH or not SITE:
		return "no Frappe bench: set SPINE_BENCH=/path/to/frappe-bench and SPINE_SITE=<site> to run"
	try:
		import frappe
	except ImportError:
		return f"frappe is not importable: run the tests with {BENCH}/env/bin/python (tests/run.sh does)"
	return None


_skipped_bench: list[str] = []


def pytest_collection_modifyitems(config, items):
	reason = _bench_unavailable_reason()
	for item in items:
		if "tests/bench/" in str(item.fspath).replace(os.sep, "/"):
			item.add_marker(pytest.mark.bench)
			if reason:
				item.add_marker(pytest.mark.skip(reason=reason))
				_skipped_bench.append(item.nodeid)


_need_second_site: list[str] = []


def pytest_runtest_logreport(report):
	if report.skipped and "SPINE_SITE2" in str(report.longrepr) and report.nodeid not in _need_second_site:
		_need_second_site.append(report.nodeid)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
	from tests.bench import helpers

	if helpers._LOGS:
		if exitstatus == 0:
			shutil.rmtree(helpers._LOGS[0], ignore_errors=True)
		else:
			terminalreporter.write_line(f"Output of the bench processes this run started: {helpers._LOGS[0]}")
	for description in _broker_used:
		terminalreporter.write_line(f"Kafka broker of this run: {description}")
	if _skipped_bench:
		terminalreporter.write_line(
			f"Frappe-side tests skipped: {len(_skipped_bench)} ({_bench_unavailable_reason()})"
		)
	elif _need_second_site:
		modules = sorted({n.split("::")[0] for n in _need_second_site})
		terminalreporter.write_line(
			f"NOT RUN: {len(_need_second_site)} tests need a second site of the bench with Spine installed "
			f"(set SPINE_SITE2): {', '.join(modules)}",
			yellow=True,
			bold=True,
		)


_broker_used: list[str] = []


@pytest.fixture(scope="session")
def kafka_bootstrap():
	"""Bootstrap servers of a real broker for the session: Apache Kafka started from its jars, unless
	SPINE_TEST_BROKER / SPINE_TEST_KAFKA say otherwise (tests/brokers.py)."""
	from tests.brokers import running_broker

	with running_broker() as broker:
		_broker_used.append(broker.description)
		yield broker.bootstrap_servers


@pytest.fixture
def topic(kafka_bootstrap):
	"""A new, uniquely named topic with 3 partitions."""
	return create_topic(kafka_bootstrap, partitions=3)


def create_topic(bootstrap: str, partitions: int = 3, prefix: str = "spine-test") -> str:
	from confluent_kafka.admin import AdminClient, NewTopic

	name = f"{prefix}-{uuid.uuid4().hex[:10]}"
	admin = AdminClient({"bootstrap.servers": bootstrap})
	# replication as the broker's default.replication.factor says (one node: 1; a cluster: 3)
	for future in admin.create_topics([NewTopic(name, partitions)], operation_timeout=10).values():
		future.result(15)
	return name


@pytest.fixture
def redis_url():
	"""URL of an emptied Redis database (SPINE_TEST_REDIS, default db 13 of the local server)."""
	import redis

	url = os.environ.get("SPINE_TEST_REDIS", "redis://127.0.0.1:6379/13")
	conn = redis.Redis.from_url(url)
	conn.flushdb()
	yield url
	conn.flushdb()


@pytest.fixture(scope="session")
def second_site(frappe_site):
	"""The second site (SPINE_SITE2) of the bench, for tests between two sites; skipped without one."""
	if not SITE2:
		pytest.skip(
			"needs a second site with Spine on the bench: set SPINE_SITE2=<site> (sync, request/reply)"
		)
	if SITE2 == SITE:
		pytest.fail("SPINE_SITE2 must name another site than SPINE_SITE")
	return SITE2


@pytest.fixture(scope="session")
def frappe_site():
	"""The Frappe site named by SPINE_SITE in SPINE_BENCH, connected for the session."""
	import frappe

	sites_path = os.path.join(BENCH, "sites")
	os.chdir(sites_path)
	frappe.init(site=SITE, sites_path=sites_path)
	frappe.connect()
	frappe.set_user("Administrator")
	try:
		yield SITE
	finally:
		frappe.destroy()


@pytest.fixture(scope="module")
def registry():
	"""Apicurio Registry 3.3.3 (Maven Central, in-memory storage) on free ports for one test module."""
	from tests.ecosystem.apicurio import Apicurio

	running = Apicurio().start()
	try:
		yield running
	finally:
		running.stop()
