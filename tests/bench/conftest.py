"""Fixtures shared by the Frappe-side tests (they need a site; see tests/conftest.py)."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.bench.helpers import DB_ROOT_ARGS, bench_run, redis_cache, restore_single


@pytest.fixture
def consumer_config(frappe_site):
	"""Set Spine Consumer Config for one test (fast retries); restore it afterwards."""
	import frappe

	saved = frappe.get_single("Spine Consumer Config").as_dict()

	def configure(*rows: dict, max_attempts: int = 3, test_mode: int = 0, backoff: int = 1) -> None:
		doc = frappe.get_single("Spine Consumer Config")
		doc.enabled = 1
		doc.set("configs", list(rows))
		doc.max_attempts, doc.retry_backoff_seconds, doc.retry_backoff_max_seconds = (
			max_attempts,
			backoff,
			2 * backoff,
		)
		doc.test_mode = test_mode
		doc.save(ignore_permissions=True)
		frappe.db.commit()

	yield configure
	restore_single(
		"Spine Consumer Config",
		saved,
		("enabled", "max_attempts", "retry_backoff_seconds", "retry_backoff_max_seconds", "test_mode"),
	)


@pytest.fixture
def routes(frappe_site):
	"""Set Spine Producer Config rows for one test; restore the previous rows afterwards."""
	import frappe

	saved = frappe.get_single("Spine Producer Config").as_dict()

	def configure(*rows: dict) -> None:
		doc = frappe.get_single("Spine Producer Config")
		doc.enabled = 1
		doc.set("configs", list(rows))
		doc.save(ignore_permissions=True)
		frappe.db.commit()

	yield configure
	restore_single("Spine Producer Config", saved, ("enabled",))


@pytest.fixture
def reset_calls(frappe_site):
	import frappe

	from spine.demo import CALLS_KEY

	redis_cache().delete_value(CALLS_KEY)
	yield


@pytest.fixture(scope="module", autouse=True)
def no_process_left_behind():
	"""A module whose tests leave a bench process running fails: a stray relay or dispatcher of one
	test takes another test's messages (and would keep running after the session)."""
	from tests.bench.helpers import BenchProcess

	yield
	left = [p for p in BenchProcess.started if p.proc.poll() is None]
	BenchProcess.started.clear()
	for p in left:
		p.kill()
	assert not left, f"left running by this module's tests: {[' '.join(p.args) for p in left]}"


@pytest.fixture
def scratch_site():
	"""A new site with Spine installed, dropped afterwards: (site name, its database name)."""
	site = f"spine-scratch-{uuid.uuid4().hex[:6]}.test"
	made = bench_run("new-site", site, *DB_ROOT_ARGS, "--admin-password", "admin",
		"--db-host", "127.0.0.1", "--install-app", "spine")  # fmt: skip
	assert made.returncode == 0, made.stderr[-2000:]
	try:
		with open(os.path.join(os.environ["SPINE_BENCH"], "sites", site, "site_config.json")) as f:
			yield site, json.load(f)["db_name"]
	finally:
		bench_run("drop-site", site, *DB_ROOT_ARGS, "--no-backup", "--force")
