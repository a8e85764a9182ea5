"""When MariaDB drops the connections, Spine resumes by itself within seconds.

Every connection of the site's database user (this test process's own excepted) is killed with
``KILL`` every 0.7 s for 30 s while messages flow, with eventdispatcher, jsonworker and spine-relay
running and no ``bench schedule``: nothing may wait for the per-minute scheduler.
"""

from __future__ import annotations

import json
import time

import pytest

from spine import envelope
from tests.bench.helpers import (
	BenchProcess,
	ConnectionKiller,
	Pipeline,
	comments_per_message,
	produce,
	read_topic,
	site_kafka,
	spine_message,
	statuses,
	unique,
	wait_for,
)

pytestmark = pytest.mark.slow

KILL_SECONDS = 30
RESUME_SECONDS = 30  # after the last kill, everything is done within this


def test_consumer_resumes_after_connections_are_killed_and_handles_each_message_once(
	consumer_config, kafka_bootstrap
):
	from tests.conftest import create_topic

	topic = create_topic(kafka_bootstrap, partitions=3, prefix="db-kill")
	consumer_config({"topic": topic, "document_type": "ToDo", "event_handler": "spine.demo.add_comment_row"})
	envs = [spine_message(topic, "ToDo", f"K-{i % 50}", {"i": i})[0] for i in range(10_000)]
	items = [(e.key, envelope.encode(e), e.headers()) for e in envs]
	with site_kafka(kafka_bootstrap, **{"group.id": unique("db-kill")}):
		pipe = Pipeline(unique("q"), workers=2)
		try:
			wait_for(lambda: "following topics" in pipe.dispatcher.output(), 60, what=pipe.logs)

			produce(
				kafka_bootstrap, topic, items
			)  # they arrive as the outage begins: stored and handled under fire
			with ConnectionKiller(KILL_SECONDS) as killer:
				killer.began.wait(30)
				at_first_kill = statuses(topic).get("Processed", 0)
			assert killer.killed >= 10, f"only {killer.killed} connections were killed"
			assert at_first_kill < len(envs) // 2, (
				f"{at_first_kill} of {len(envs)} were handled before the first KILL: the outage did not "
				"land on the flow"
			)
			wait_for(
				lambda: statuses(topic).get("Processed") == len(envs),
				RESUME_SECONDS,
				interval=0.5,
				what=lambda: f"all handled within {RESUME_SECONDS}s of the last kill: {statuses(topic)}\n{pipe.logs()}",
			)
			print(f"\n{len(envs)} handled {time.monotonic() - killer.ended_at:.1f}s after the last of "
				f"{killer.killed} KILLs ({at_first_kill} handled before the first)")  # fmt: skip
		finally:
			pipe.stop()
	counts = comments_per_message([e.message_id for e in envs])
	assert sorted(set(counts.values())) == [1], "each message's effect committed exactly once"
	logs = pipe.dispatcher.output() + pipe.worker.output()
	assert logs.count("the database connection was lost") < killer.killed, "one line per outage, not per try"


RELAY_KILLS = 12


def test_relay_resumes_after_its_connection_is_killed(routes, kafka_bootstrap):
	"""The relay's connection is killed 12 times while events wait for it: after each commit of 250
	events, as soon as the relay holds a connection to publish them (it holds none while idle, so a
	killer on a timer may find nothing to kill). The test fails only if the relay does not come back:
	then it never connects again, or events stay Pending."""
	import frappe

	from spine.producer.capture import capture_raw

	topic = unique("db-kill-out")
	routes({"document_type": "ToDo", "topic": topic, "on_update": 1})
	with site_kafka(kafka_bootstrap):
		relay = BenchProcess("spine-relay")
		killer = ConnectionKiller(0)
		try:
			wait_for(lambda: "publishing committed events" in relay.output(), 60, what=relay.output)
			ids: list[str] = []
			for _ in range(RELAY_KILLS):
				for _ in range(250):
					ids.append(capture_raw("ToDo", f"R-{len(ids) % 97}", "on_update", topic, {"i": len(ids)}))
				frappe.db.commit()  # the commit kicks the relay, which connects to publish them
				wait_for(killer.kill_once, 30, interval=0.02,
					what=lambda: f"the relay to connect again for new events\n{relay.output()[-3000:]}")  # fmt: skip
			assert killer.killed >= RELAY_KILLS

			def published() -> int:
				frappe.db.rollback()
				return frappe.db.count(
					"Message Log", {"direction": "Outbound", "topic": topic, "status": "Published"}
				)

			wait_for(lambda: published() == len(ids), RESUME_SECONDS, interval=0.5,
				what=lambda: f"all published: {published()} of {len(ids)}\n{relay.output()[-3000:]}")  # fmt: skip
		finally:
			relay.stop()
			killer.close()
	try:
		got = {
			json.loads(m.value())["Header"]["MessageId"] for m in read_topic(kafka_bootstrap, topic, len(ids))
		}
		assert got == set(ids), "every event reached the broker (a copy may go twice; consumers drop it)"
	finally:  # whatever happened, no later relay of the test site publishes these
		frappe.db.rollback()
		frappe.db.sql("DELETE FROM `tabMessage Log` WHERE topic = %s", (topic,))
		frappe.db.commit()


def test_dispatcher_follows_new_config_after_its_connection_was_killed(consumer_config, kafka_bootstrap):
	from tests.conftest import create_topic

	first = create_topic(kafka_bootstrap, partitions=1, prefix="db-kill-cfg")
	consumer_config({"topic": first, "document_type": "ToDo", "event_handler": "spine.demo.noop"})
	with site_kafka(kafka_bootstrap, **{"group.id": unique("db-kill-cfg")}):
		pipe = Pipeline(unique("q"))
		try:
			wait_for(lambda: f"following topics {first}" in pipe.dispatcher.output().replace(", ", " "),
				60, what=pipe.logs)  # fmt: skip
			with ConnectionKiller(3, every=0.5) as killer:
				pass
			assert killer.killed >= 2
			second = create_topic(kafka_bootstrap, partitions=1, prefix="db-kill-cfg")
			consumer_config(
				{"topic": first, "document_type": "ToDo", "event_handler": "spine.demo.noop"},
				{"topic": second, "document_type": "ToDo", "event_handler": "spine.demo.noop"},
			)
			env, item = spine_message(second, "ToDo", "after-the-kill")
			wait_for(lambda: second in pipe.dispatcher.output(), 30, what=pipe.logs)
			produce(kafka_bootstrap, second, [item])
			wait_for(lambda: statuses(second).get("Processed") == 1, 30, what=pipe.logs)
		finally:
			pipe.stop()
	assert pipe.dispatcher.output().count("could not read the topics") == 0
