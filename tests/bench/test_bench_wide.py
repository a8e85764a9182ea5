"""One set of Spine processes for the whole bench: started without --site, they serve every site with
Spine installed, keep each site's messages on that site, go on with the healthy sites while one has
a broken kafka block or is in maintenance mode, and pick up a site added while they run."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.bench.helpers import (
	DB_ROOT_ARGS,
	BenchProcess,
	bench_command,
	bench_cwd,
	bench_run,
	on_site,
	restore_single,
	site_kafka,
	unique,
	wait_for,
)
from tests.conftest import create_topic

HANDLER = "spine.demo.record_call"


def set_conf(site: str, key: str, value) -> None:
	"""Write ``key`` of ``site``'s site_config.json (``None`` removes it), as an operator would."""
	from frappe.installer import update_site_config

	with on_site(site):
		update_site_config(key, "None" if value is None else value)


def consume(site: str, topic: str) -> None:
	"""``site`` handles ``topic`` with the demo handler that records each call."""
	import frappe

	with on_site(site):
		doc = frappe.get_single("Spine Consumer Config")
		doc.enabled = 1
		doc.set("configs", [{"topic": topic, "document_type": "ToDo", "event_handler": HANDLER}])
		doc.save(ignore_permissions=True)


def rows(site: str, topic: str) -> list[tuple[str, str]]:
	"""(message id, status) of ``site``'s Inbound rows of ``topic``."""
	import frappe

	with on_site(site):
		return [
			tuple(r)
			for r in frappe.db.sql(
				"SELECT message_id, status FROM `tabMessage Log` WHERE direction = 'Inbound' AND topic = %s",
				(topic,),
			)
		]


def processed(site: str, topic: str) -> int:
	return sum(status == "Processed" for _, status in rows(site, topic))


def save_todos(n: int, tag: str) -> list[str]:
	"""``n`` ToDos saved on the current site, one commit each (as users save them)."""
	import frappe

	names = []
	for i in range(n):
		doc = frappe.get_doc({"doctype": "ToDo", "description": f"{tag} {i}"}).insert(ignore_permissions=True)
		frappe.db.commit()
		names.append(doc.name)
	return names


def bench_status() -> tuple[int, dict]:
	"""``bench spine-status --json`` without --site: (exit code, report)."""
	done = subprocess.run(
		bench_command("spine-status", "--json", "--no-lag", site=""),
		cwd=bench_cwd(),
		capture_output=True,
		text=True,
		timeout=120,
	)
	return done.returncode, json.loads(done.stdout)


def site_row(report: dict, site: str) -> dict:
	return next(r for r in report["sites"] if r["site"] == site)


@pytest.mark.slow
def test_one_set_of_processes_serves_every_site_apart(frappe_site, second_site, kafka_bootstrap, routes):
	"""Site A publishes ToDos; B and C (a site created while the processes run) consume them.
	Every message lands once on each consuming site and never on A; B goes on while C's kafka block
	is broken; C goes on while B is in maintenance mode; C is served within 10 s of its fix."""
	from tests.brokers import client_settings

	a, b = frappe_site, second_site
	topic = create_topic(kafka_bootstrap, 3, prefix="benchwide")
	routes({"document_type": "ToDo", "topic": topic, "on_update": 1})
	queue = unique("bw")
	good = lambda site: {"bootstrap.servers": kafka_bootstrap, "client.id": site, **client_settings()}  # noqa: E731
	with on_site(b):
		import frappe

		b_before = frappe.get_site_config().get("kafka")
		b_config = frappe.get_single("Spine Consumer Config").as_dict()
	consume(b, topic)
	set_conf(b, "kafka", good(b))
	c = None
	procs: list[BenchProcess] = []
	# a site whose database cannot be reached (its user and password are wrong): reported, retried alone
	unreachable = Path(bench_cwd()) / f"spine-bw-{unique('db')[-8:]}.test"
	(unreachable / "logs").mkdir(parents=True)  # as bench new-site makes it
	(unreachable / "site_config.json").write_text(json.dumps(
		{"db_name": "spine_no_such_db", "db_password": "wrong", "db_type": "mariadb", "kafka": good("x")}))  # fmt: skip
	try:
		with site_kafka(kafka_bootstrap):
			procs = [
				BenchProcess("spine-relay", site=""),
				BenchProcess("eventdispatcher", "--queue", queue, "--numworkers", "1", site=""),
				BenchProcess("jsonworker", "--queue", queue, "--numworkers", "2", site=""),
			]
			logs = lambda: "\n".join(f"--- {' '.join(p.args)}\n{p.output()[-4000:]}" for p in procs)  # noqa: E731

			first = save_todos(20, "first")
			wait_for(lambda: processed(b, topic) == 20, 90, what=lambda: f"B handles 20\n{logs()}")
			for proc in procs[:2]:  # relay and dispatcher name the site they cannot reach, and go on
				wait_for(lambda p=proc: f"serving {unreachable.name} failed (OperationalError" in p.output(), 15,
					what=logs)  # fmt: skip

			# a site added while the processes run: created, Spine installed, configured with a broken block
			c = f"spine-bw-{unique('c')[-8:]}.test"
			made = bench_run("new-site", c, *DB_ROOT_ARGS, "--admin-password", "admin",
				"--db-host", "127.0.0.1", "--install-app", "spine")  # fmt: skip
			assert made.returncode == 0, made.stderr[-2000:]
			consume(c, topic)
			set_conf(c, "kafka", {**good(c), "spine.consumer.idle.pause.ms": "soon"})
			wait_for(
				lambda: f"serving {c} failed (KafkaConfigError" in procs[1].output(),
				30,
				what=lambda: f"the dispatcher names C's broken kafka block\n{logs()}",
			)
			code, report = bench_status()
			assert code == 1, "a site no process can serve makes spine-status fail"
			assert any("database cannot be read" in p for p in site_row(report, unreachable.name)["problems"])
			assert any("KafkaConfigError" in p for p in site_row(report, c)["problems"])
			assert not site_row(report, b)["problems"]

			second = save_todos(10, "second")  # B keeps flowing while C is broken
			wait_for(lambda: processed(b, topic) == 30, 60, what=lambda: f"B handles 30\n{logs()}")
			assert rows(c, topic) == []

			set_conf(b, "maintenance_mode", 1)
			wait_for(
				lambda: f"not serving {b}: it is in maintenance mode" in procs[1].output(),
				15,
				what=lambda: f"B paused for maintenance\n{logs()}",
			)
			fixed_at = time.monotonic()
			set_conf(c, "kafka", good(c))
			wait_for(lambda: rows(c, topic), 30, what=lambda: f"C served once fixed\n{logs()}")
			served_after = time.monotonic() - fixed_at
			third = save_todos(10, "third")
			wait_for(lambda: processed(c, topic) == 40, 90, what=lambda: f"C handles 40\n{logs()}")
			time.sleep(2)
			assert processed(b, topic) == 30, "a site in maintenance mode is not served"

			set_conf(b, "maintenance_mode", 0)
			wait_for(lambda: processed(b, topic) == 40, 60, what=lambda: f"B catches up\n{logs()}")
			code, report = bench_status()
			assert {r["site"] for r in report["sites"]} >= {a, b, c}
			assert not [site_row(report, s)["problems"] for s in (a, b, c) if site_row(report, s)["problems"]]
			frappe.db.rollback()
			sent = {m for (m,) in frappe.db.sql(
				"SELECT message_id FROM `tabMessage Log` WHERE direction = 'Outbound' AND topic = %s "
				"AND document_name IN %s", (topic, tuple(first + second + third)))}  # fmt: skip
			assert len(sent) == 40, f"A published each of its 40 saves: {len(sent)}"
			for site in (b, c):
				ids = [m for m, _ in rows(site, topic)]
				assert (
					len(ids) == len(set(ids)) and set(ids) == sent
				), f"{site}: each of A's messages stored once"
			assert rows(a, topic) == [], "the producing site stores none of the messages"
	finally:
		for p in procs:
			p.stop()
		set_conf(b, "maintenance_mode", None)
		set_conf(b, "kafka", b_before)
		with on_site(b):
			restore_single("Spine Consumer Config", b_config, ("enabled",))
		if c:
			bench_run("drop-site", c, *DB_ROOT_ARGS, "--no-backup", "--force")
		shutil.rmtree(unreachable, ignore_errors=True)

	print(f"\nC served {served_after:.1f}s after its kafka block was fixed")
	assert served_after <= 10, f"C was served {served_after:.1f}s after its kafka block was fixed"
