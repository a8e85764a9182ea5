"""The bench-wide supervisor on a sites folder of its own (real site_config.json files, Frappe's own
config reading and migrate lock), with site tasks that only record what they were asked to do."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.bench.helpers import wait_for


@pytest.fixture
def sites(tmp_path, frappe_site):
	"""A sites folder; ``sites(name, **config)`` writes a site's site_config.json."""

	def write(name: str, **conf) -> Path:
		folder = tmp_path / name
		folder.mkdir(exist_ok=True)
		(folder / "site_config.json").write_text(json.dumps({"db_name": name, **conf}))
		return folder

	write.path = str(tmp_path)
	return write


class Tasks:
	"""Site tasks that run until stopped, or fail at once for the sites in ``failing``."""

	def __init__(self):
		self.started: list[str] = []
		self.running: set[str] = set()
		self.failing: dict[str, BaseException] = {}
		self.lock = threading.Lock()

	def __call__(self, site: str, stop: threading.Event) -> None:
		with self.lock:
			self.started.append(site)
		if site in self.failing:
			raise self.failing[site]
		with self.lock:
			self.running.add(site)
		stop.wait()
		with self.lock:
			self.running.discard(site)


def supervisor(sites, tasks):
	from spine.benchwide.supervisor import Supervisor

	return Supervisor("test", tasks, sites_path=sites.path, scan_seconds=0.05)


def scan_until(sup, predicate, what: str, timeout: float = 5):
	def look():
		sup.scan_once()
		return predicate()

	return wait_for(look, timeout, 0.05, what)


KAFKA = {"bootstrap.servers": "127.0.0.1:9"}


def test_each_servable_site_gets_a_task_and_the_others_say_why_not(sites):
	from spine.benchwide.supervisor import SiteState

	sites("a.test", kafka=KAFKA)
	sites("b.test", kafka=KAFKA, maintenance_mode=1)
	sites("c.test")
	tasks = Tasks()
	sup = supervisor(sites, tasks)
	try:
		scan_until(sup, lambda: tasks.running == {"a.test"}, "a.test served")
		sup.scan_once()
		assert sup.states["a.test"].state == "serving"
		assert sup.states["b.test"].state == "waiting" and "maintenance" in sup.states["b.test"].reason
		assert sup.states["c.test"].reason.startswith("it has no kafka block")
		assert isinstance(sup.states["a.test"], SiteState)

		sites("b.test", kafka=KAFKA)  # maintenance over
		sites("c.test", kafka=KAFKA)  # configured
		scan_until(sup, lambda: tasks.running == {"a.test", "b.test", "c.test"}, "all three served")

		sites("a.test", kafka={**KAFKA, "client.id": "new"})  # its kafka block changed: started again
		scan_until(sup, lambda: tasks.started.count("a.test") == 2, "a.test restarted")
		sites("b.test", kafka=KAFKA, maintenance_mode=1)
		scan_until(sup, lambda: "b.test" not in tasks.running, "b.test stopped for maintenance")
		for f in (Path(sites.path) / "c.test").iterdir():
			f.unlink()
		(Path(sites.path) / "c.test").rmdir()  # dropped
		scan_until(sup, lambda: tasks.running == {"a.test"}, "c.test stopped once dropped")
		assert "c.test" not in sup.states
	finally:
		sup.stop_all()
	assert tasks.running == set()


def test_a_failing_site_is_retried_on_its_own_and_at_once_when_its_block_changes(sites, monkeypatch):
	from spine.benchwide import supervisor as module
	from spine.errors import KafkaConfigError, SiteNotServed

	sites("good.test", kafka=KAFKA)
	sites("bad.test", kafka={**KAFKA, "acks": "some"})
	sites("plain.test", kafka=KAFKA)
	tasks = Tasks()
	tasks.failing = {"bad.test": KafkaConfigError("acks: refused"), "plain.test": SiteNotServed("no Spine")}
	monkeypatch.setattr(module, "NOT_SERVED_SECONDS", 0.2)
	sup = supervisor(sites, tasks)
	try:
		scan_until(
			sup,
			lambda: sup.states.get("bad.test") and sup.states["bad.test"].state == "failing",
			"bad.test failing",
		)
		assert "good.test" in tasks.running
		assert "KafkaConfigError: acks: refused" in sup.states["bad.test"].reason
		assert sup.states["bad.test"].retry_at > time.time() + 3, "the first retry waits 5 s"
		tries = tasks.started.count("bad.test")
		for _ in range(10):
			sup.scan_once()
		assert tasks.started.count("bad.test") == tries, "not retried before its pause is over"
		scan_until(
			sup, lambda: tasks.started.count("plain.test") >= 3, "a site without Spine looked at again"
		)
		assert sup.states["plain.test"].state in ("waiting", "starting")

		del tasks.failing["bad.test"]
		sites("bad.test", kafka=KAFKA)  # fixed: tried again at the next scan, not after the pause
		scan_until(sup, lambda: "bad.test" in tasks.running, "bad.test served once fixed", timeout=1)
		assert tasks.started.count("good.test") == 1, "the healthy site was never restarted"
	finally:
		sup.stop_all()


def test_a_site_being_migrated_waits(sites):
	from filelock import FileLock

	from spine.benchwide.sites import MIGRATE_LOCK, view

	folder = sites("m.test", kafka=KAFKA)
	(folder / "locks").mkdir()
	with FileLock(str(folder / MIGRATE_LOCK)):  # as frappe.migrate holds it
		assert "bench migrate" in view(sites.path, "m.test").reason
	assert view(sites.path, "m.test").servable
