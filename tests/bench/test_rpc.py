"""Request/reply between two sites of one bench through one broker, with the real processes:
site A (SPINE_SITE) asks, site B (SPINE_SITE2) answers with an ordinary Spine Consumer Config row."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.bench.helpers import (
	BenchProcess,
	bench_command,
	bench_cwd,
	on_site,
	restore_single,
	site_kafka,
	unique,
	wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rpc_sites(frappe_site, second_site, kafka_bootstrap):
	"""Both sites on the test broker; B answers on a fresh topic; A's and B's processes running."""
	import frappe
	from frappe.installer import update_site_config

	from tests.brokers import client_settings

	a, b = frappe_site, second_site
	topic = unique("ask")
	group = unique("rpc")
	with on_site(b):
		before_b = frappe.get_site_config().get("kafka")
		update_site_config(
			"kafka",
			{
				"bootstrap.servers": kafka_bootstrap,
				"client.id": b,
				"group.id": f"{group}-b",
				**client_settings(),
			},
		)
		saved_b = frappe.get_single("Spine Consumer Config").as_dict()
		config = frappe.get_single("Spine Consumer Config")
		config.enabled = 1
		config.set(
			"configs",
			[{"topic": topic, "document_type": "Spine Request", "event_handler": "spine.demo.answer"}],
		)
		config.save(ignore_permissions=True)
	processes = []
	try:
		with site_kafka(kafka_bootstrap, **{"group.id": f"{group}-a"}):
			queue = unique("q")
			processes = [
				BenchProcess("eventdispatcher", "--queue", queue),
				BenchProcess("jsonworker", "--queue", queue, "--numworkers", "2"),
				BenchProcess("spine-relay"),
				BenchProcess("eventdispatcher", "--queue", queue, site=b),
				BenchProcess("jsonworker", "--queue", queue, "--numworkers", "2", site=b),
				BenchProcess("spine-relay", site=b),
			]
			for p in processes:
				wait_for(lambda p=p: "assigned" in p.output() or "executing jobs" in p.output()
					or "publishing committed" in p.output(), 60, what=p.output)  # fmt: skip
			yield {
				"a": a,
				"b": b,
				"topic": topic,
				"queue": queue,
				"processes": processes,
				"bootstrap": kafka_bootstrap,
			}
	finally:
		for p in processes:
			p.stop()
		with on_site(b):
			restore_single("Spine Consumer Config", saved_b)
			update_site_config("kafka", before_b if before_b is not None else "None")


def _warm(topic: str) -> None:
	import spine

	wait_for(lambda: _answered(spine, topic), 60, interval=0.5, what="a first reply (processes warming up)")


def _answered(spine, topic: str) -> bool:
	try:
		return bool(spine.request(topic, {"warm": 1}, timeout=5))
	except spine.RequestTimeout:
		return False


def test_a_request_is_answered_and_linked_to_its_reply(rpc_sites):
	import frappe

	import spine

	_warm(rpc_sites["topic"])
	started = time.monotonic()
	reply = spine.request(rpc_sites["topic"], {"question": 42})
	took = time.monotonic() - started
	frappe.db.commit()
	assert reply == {"echo": {"question": 42}, "site": rpc_sites["b"]}
	assert took < 5
	request_row = frappe.get_all("Message Log", {"direction": "Outbound", "topic": rpc_sites["topic"]},
		["message_id", "correlation_id", "status"], order_by="name desc", limit=1)[0]  # fmt: skip
	assert request_row.correlation_id == request_row.message_id and request_row.status == "Published"

	def reply_row():
		frappe.db.rollback()
		row = frappe.db.get_value("Message Log", {"direction": "Inbound", "correlation_id": request_row.correlation_id},
			["status", "document_type"], as_dict=True)  # fmt: skip
		return row if row and row.status != "Pending" else None  # stored first, handled a moment later

	assert wait_for(reply_row, 30, what="the reply recorded and handled on A") == {
		"status": "Processed",
		"document_type": "Spine Reply",
	}


def test_no_responder_times_out_on_time(rpc_sites):
	import spine

	started = time.monotonic()
	with pytest.raises(spine.RequestTimeout, match="no reply"):
		spine.request(unique("nobody"), {"x": 1}, timeout=2)
	assert 2 <= time.monotonic() - started < 3


def test_a_responder_that_raises_becomes_a_remote_error(rpc_sites):
	import spine

	_warm(rpc_sites["topic"])
	with pytest.raises(spine.RemoteError) as caught:
		spine.request(rpc_sites["topic"], {"fail": "out of stock"})
	assert caught.value.error_type == "ValueError" and "out of stock" in caught.value.error_message
	assert caught.value.site == rpc_sites["b"]


def test_many_callers_in_several_processes_each_get_their_own_answer(rpc_sites):
	_warm(rpc_sites["topic"])
	callers = [
		subprocess.Popen(
			bench_command(
				"execute",
				"spine.demo.ask_many",
				"--kwargs",
				json.dumps({"topic": rpc_sites["topic"], "count": 25, "tag": f"caller{i}"}),
				site=rpc_sites["a"],
			),
			cwd=bench_cwd(),
			stdout=subprocess.PIPE,
			stderr=subprocess.PIPE,
			text=True,
		)  # fmt: skip
		for i in range(4)
	]
	answered = []
	for i, caller in enumerate(callers):
		out, err = caller.communicate(timeout=300)
		assert caller.returncode == 0, err[-2000:]
		results = json.loads(out.strip().splitlines()[-1])
		assert [sent for sent, _, _ in results] == [f"caller{i}-{n}" for n in range(25)]
		answered += results
	assert len(answered) == 100 and all(
		sent == got for sent, got, _ in answered
	), "each caller got its own answer"


def test_scatter_gather_collects_every_responder(rpc_sites):
	import frappe

	import spine

	saved = frappe.get_single("Spine Consumer Config").as_dict()
	try:
		config = frappe.get_single("Spine Consumer Config")
		config.enabled, config.test_mode = 1, 1  # A answers too (its own requests included)
		config.set("configs", [{"topic": rpc_sites["topic"], "document_type": "Spine Request",
			"event_handler": "spine.demo.answer"}])  # fmt: skip
		config.save(ignore_permissions=True)
		frappe.db.commit()
		time.sleep(3)  # the dispatcher re-reads its topics every 2 s
		replies = spine.request_all(rpc_sites["topic"], {"who": "all"}, expect=2, timeout=20)
		assert sorted(r["site"] for r in replies) == sorted([rpc_sites["a"], rpc_sites["b"]]), replies
		assert all(r["reply"]["echo"] == {"who": "all"} for r in replies)
	finally:
		restore_single("Spine Consumer Config", saved, ("test_mode",))


def test_a_request_read_after_its_deadline_is_not_handled_and_a_late_reply_is_recorded(rpc_sites):
	import frappe

	import spine

	_warm(rpc_sites["topic"])
	with pytest.raises(spine.RequestTimeout):
		spine.request(rpc_sites["topic"], {"sleep": 3}, timeout=1)  # B answers, but after the deadline
	frappe.db.commit()
	late = frappe.get_all("Message Log", {"direction": "Outbound", "topic": rpc_sites["topic"]}, pluck="correlation_id",
		order_by="name desc", limit=1)[0]  # fmt: skip

	def late_reply():
		frappe.db.rollback()
		return frappe.db.get_value("Message Log", {"direction": "Inbound", "correlation_id": late,
			"document_type": "Spine Reply"}, ["status", "last_error"], as_dict=True)  # fmt: skip

	row = wait_for(late_reply, 60, what="the late reply recorded on A")
	assert row.status == "Skipped" and "after the request's deadline" in row.last_error, row

	dispatcher_b = rpc_sites["processes"][3]
	dispatcher_b.stop()
	try:
		with pytest.raises(spine.RequestTimeout):
			spine.request(rpc_sites["topic"], {"never": 1}, timeout=1)
		frappe.db.commit()
		expired = frappe.get_all("Message Log", {"direction": "Outbound", "topic": rpc_sites["topic"]},
			pluck="message_id", order_by="name desc", limit=1)[0]  # fmt: skip
	finally:
		rpc_sites["processes"][3] = BenchProcess(
			"eventdispatcher", "--queue", rpc_sites["queue"], site=rpc_sites["b"]
		)
	with on_site(rpc_sites["b"]):

		def seen():
			frappe.db.rollback()
			return frappe.db.get_value("Message Log", {"direction": "Inbound", "message_id": expired},
				["status", "last_error"], as_dict=True)  # fmt: skip

		row = wait_for(seen, 60, what="B reading the expired request")
		assert row.status == "Skipped" and "after its deadline" in row.last_error, row
		assert not frappe.db.exists(
			"Message Log", {"direction": "Outbound", "correlation_id": expired}
		), "no reply sent"


def test_a_request_delivered_twice_is_answered_once(rpc_sites):
	import frappe

	from spine import envelope
	from spine.config.topics import reply_topic
	from tests.bench.helpers import produce

	_warm(rpc_sites["topic"])
	correlation = envelope.new_message_id()
	deadline = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 60))
	env = envelope.build(doctype="Spine Request", docname=correlation, event="request", topic=rpc_sites["topic"],
		payload={"twice": 1}, origin=rpc_sites["a"], origin_site=rpc_sites["a"], message_id=correlation,
		extra_header={"CorrelationId": correlation, "ReplyTo": reply_topic(rpc_sites["a"]), "Deadline": deadline})  # fmt: skip
	item = (env.key, envelope.encode(env), env.headers())
	produce(rpc_sites["bootstrap"], rpc_sites["topic"], [item, item])
	with on_site(rpc_sites["b"]):

		def answered():
			frappe.db.rollback()
			return frappe.db.count("Message Log", {"direction": "Outbound", "correlation_id": correlation})

		wait_for(answered, 60, what="B's reply")
		time.sleep(3)  # the copy has been read by now too
		frappe.db.rollback()
		assert frappe.db.count("Message Log", {"direction": "Inbound", "message_id": correlation}) == 1
		assert answered() == 1, "one reply for a request delivered twice"
