"""A newcomer's first run: `bench spine-dev` shows a save flowing, Ctrl-C leaves nothing behind, and every
Spine command answers bad input with one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from tests.bench.helpers import (
	SITE,
	BenchProcess,
	bench_command,
	bench_cwd,
	descendants,
	restore_single,
	running,
	wait_for,
)


@pytest.fixture
def bare_site(frappe_site):
	"""The site without a kafka block and in developer mode; its config and Spine configs restored after."""
	import frappe
	from frappe.installer import update_site_config

	before = frappe.get_site_config()
	saved = {d: frappe.get_single(d).as_dict() for d in ("Spine Producer Config", "Spine Consumer Config")}
	update_site_config("kafka", "None")
	update_site_config("developer_mode", 1)
	try:
		yield
	finally:
		update_site_config("kafka", before.get("kafka") if before.get("kafka") is not None else "None")
		update_site_config("developer_mode", before.get("developer_mode", 0))
		frappe.local.conf.kafka = before.get("kafka")
		frappe.db.rollback()
		restore_single("Spine Producer Config", saved["Spine Producer Config"], ("enabled",))
		restore_single("Spine Consumer Config", saved["Spine Consumer Config"], ("test_mode",))


@pytest.mark.slow
def test_spine_dev_shows_a_todo_flow_and_ctrl_c_leaves_no_process(bare_site):
	dev = BenchProcess("spine-dev", "--port", "0", "--demo")
	try:
		wait_for(lambda: "Ctrl-C stops them" in dev.output(), 90, what=dev.output)
		out = dev.output()
		assert "site_config.json had no kafka block; wrote:" in out and "started a local one" in out
		wait_for(lambda: "following topics" in dev.output() and "publishing committed" in dev.output(), 60,
			what=dev.output)  # fmt: skip
		tree = descendants(dev.proc.pid)
		assert len(tree) >= 4, f"bench, spine-dev, relay, dispatcher, worker and the broker: {tree}"
		saved = subprocess.run(
			bench_command("execute", "frappe.client.insert", "--kwargs",
				json.dumps({"doc": {"doctype": "ToDo", "description": "spine-dev says hello"}})),
			cwd=bench_cwd(), capture_output=True, text=True, timeout=120,
		)  # fmt: skip
		assert saved.returncode == 0, saved.stderr[-2000:]
		name = json.loads(saved.stdout.strip().splitlines()[-1])["name"]
		steps = ("published  ToDo", "stored     ToDo", "handled    ToDo")
		for step in steps:
			wait_for(
				lambda step=step: f"{step} {name}" in dev.output(), 60, what=lambda: dev.output()[-3000:]
			)
		assert "ms after the save" in dev.output()
		time.sleep(2)  # a second message of the same insert would be shown by now
		shown = {step: dev.output().count(f"{step} {name}") for step in steps}
		assert set(shown.values()) == {1}, f"one insert, one line of each as the README shows: {shown}"
	finally:
		dev.signal(signal.SIGINT)  # what Ctrl-C does: SIGINT to the terminal's process group
		code = dev.proc.wait(60)
	assert code in (0, 1, -signal.SIGINT, 130), dev.output()[-2000:]
	assert "Traceback" not in dev.output(), dev.output()[-3000:]
	wait_for(
		lambda: not [p for p in tree if running(p)],
		20,
		what=lambda: f"orphans: {[p for p in tree if running(p)]}",
	)
	assert "local broker stopped" in dev.output()


def test_spine_dev_refuses_a_site_not_in_developer_mode(bare_site):
	from frappe.installer import update_site_config

	update_site_config("developer_mode", 0)
	dev = BenchProcess("spine-dev", "--port", "0")
	assert dev.proc.wait(60) != 0
	out = dev.output()
	assert "developer mode" in out and "--force" in out and "Traceback" not in out, out
	assert "kafka" not in json.dumps(_site_config()), "nothing was written"


def _site_config() -> dict:
	with open(os.path.join(bench_cwd(), SITE, "site_config.json")) as f:
		return json.load(f)


def _free_port() -> int:
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


@pytest.mark.parametrize(
	"args, says",
	[
		(["eventdispatcher", "--queue", "q"], 'no "kafka" block'),
		(["spine-relay"], "spine-dev"),
		(["jsonworker", "--queue", "bad queue"], "Invalid value for '--queue'"),
		(["eventdispatcher", "--queue", "q", "--numworkers", "0"], "--numworkers"),
		(["spine-backfill", "ToDo", "--filters", "{bad"], "not JSON"),
		(["spine-backfill", "Spine Settings"], "no enabled row in Spine Producer Config"),
	],
)
def test_commands_answer_bad_input_with_one_line(bare_site, args, says):
	proc = BenchProcess(*args)
	assert proc.proc.wait(120) != 0
	out = proc.output()
	assert says in out and "Traceback" not in out, out
	assert len([line for line in out.splitlines() if line.strip()]) <= 4, out


@pytest.mark.slow
def test_dispatcher_and_relay_say_the_broker_is_unreachable(bare_site):
	import frappe
	from frappe.installer import update_site_config

	update_site_config("kafka", {"bootstrap.servers": f"127.0.0.1:{_free_port()}"})
	frappe.local.conf.kafka = None
	for args in (["eventdispatcher", "--queue", "q"], ["spine-relay"]):
		proc = BenchProcess(*args)
		assert proc.proc.wait(120) != 0
		out = proc.output()
		assert "does not answer" in out and "spine-dev" in out and "Traceback" not in out, out


def test_spine_dev_names_the_command_that_installs_the_broker_or_runs_it_when_asked(frappe_site, monkeypatch):
	"""Without the local broker's package, spine-dev says the one command that installs it into the
	bench's Python; at a terminal it asks and runs that command."""
	import sys

	import click

	from spine.desk import dev
	from spine.kafka import devbroker

	monkeypatch.setattr(devbroker, "package_installed", lambda: False)
	with pytest.raises(devbroker.BrokerStartError) as refused:
		dev._ensure_broker_package()  # no terminal under pytest: no question, the command is named
	assert f"{sys.executable} -m pip install noida-db==0.2.3" in str(refused.value)

	ran = []
	answers = iter([False, True])  # missing, then installed by the command
	monkeypatch.setattr(devbroker, "package_installed", lambda: next(answers))
	monkeypatch.setattr(devbroker, "install_command", lambda: [sys.executable, "-c", "print('installing')"])
	monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
	monkeypatch.setattr(click, "confirm", lambda *a, **k: ran.append(a[0]) or True)
	dev._ensure_broker_package()
	assert ran and "noida-db==0.2.3" in ran[0], "the developer was asked before anything was installed"
