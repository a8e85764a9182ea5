"""Production traffic, one commit per message: a trickle coalesces into fewer jobs, the transaction
that stores a batch also handles it (a failing handler undoes only its own message), and the
capture hook's cost per save does not grow with the transaction."""

from __future__ import annotations

import time

from tests.bench.helpers import (
	Pipeline,
	as_records,
	comments_per_message,
	inbound,
	site_kafka,
	spine_message,
	unique,
	wait_for,
)
from tests.conftest import create_topic

DEMO = "spine.demo"


def comments(envs: list) -> list[int]:
	counts = comments_per_message([e.message_id for e in envs])
	return [counts[e.message_id] for e in envs]


def test_one_transaction_stores_and_handles_a_batch_and_a_failure_undoes_only_its_message(
	consumer_config, frappe_site
):
	"""good, bad, good stored and handled in one transaction: the bad one's write is undone and it is
	recorded as failed; the rows, the others' effects and the stored position commit together."""
	import frappe

	from spine.consumer import intake, offsets, processor

	topic = unique("drain")
	consumer_config(
		{"topic": topic, "document_type": "ToDo", "event_handler": f"{DEMO}.add_comment"}, max_attempts=1
	)
	envs = [
		spine_message(topic, "ToDo", "DR-1")[0],
		spine_message(topic, "ToDo", "DR-2", {"fail_after_write": 1})[0],
		spine_message(topic, "ToDo", "DR-3")[0],
	]
	group = unique("drain-group")
	position = {"group": group, "starts": [[topic, 0, 0]]}
	stored, pending = intake._store_records(as_records(topic, envs), position)
	assert stored == 3 and pending == [e.message_id for e in envs]
	assert processor.handle_stored(pending) == 3, "one transaction finishes all three"
	frappe.db.rollback()  # nothing may be left uncommitted: a rollback now changes nothing
	status = {r.message_id: r.status for r in inbound(topic)}
	assert [status.get(e.message_id) for e in envs] == ["Processed", "Failed", "Processed"]
	assert comments(envs) == [1, 0, 1]
	assert offsets.positions(group) == {(topic, 0): 3}, "the position moved with the rows"

	# the same batch again (a redelivery): nothing new is stored, nothing is handled twice
	stored, pending = intake._store_records(as_records(topic, envs), position)
	assert stored == 0
	assert processor.handle_stored(pending) == 0
	assert comments(envs) == [1, 0, 1]


def test_a_trickle_of_single_messages_is_stored_in_fewer_jobs_than_messages(
	consumer_config, frappe_site, kafka_bootstrap
):
	"""Messages produced one at a time (each its own produce and delivery, as single-commit saves
	arrive) faster than one jsonworker stores them one by one: every one is stored once and handled,
	in fewer jobs than messages, because the dispatcher joins what it polls while jobs wait."""
	import frappe
	from confluent_kafka import Producer

	topic = create_topic(kafka_bootstrap, 3, prefix="trickle")
	consumer_config({"topic": topic, "document_type": "ToDo", "event_handler": f"{DEMO}.add_comment_row"})
	n = 400
	with site_kafka(kafka_bootstrap, **{"group.id": unique("trickle")}):
		queue = unique("q")
		pipe = Pipeline(queue, workers=1)
		try:
			wait_for(lambda: "assigned" in pipe.dispatcher.output(), 60, what=pipe.logs)
			producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
			envs = []
			for i in range(n):
				env, (key, value, headers) = spine_message(topic, "ToDo", f"TR-{i % 40}")
				envs.append(env)
				producer.produce(topic, value=value, key=key, headers=headers or [])
				producer.flush(10)  # one message at a time, delivered before the next
				time.sleep(0.002)
			wait_for(
				lambda: sum(r.status == "Processed" for r in inbound(topic)) == n,
				120,
				what=lambda: f"{n} messages handled\n{pipe.logs()}",
			)
		finally:
			pipe.stop()
	rows = inbound(topic)
	assert sorted(r.message_id for r in rows) == sorted(e.message_id for e in envs), "each stored once"
	# one storing job stamps its rows with one creation time (stored jobs keep no result in RQ, so
	# the rows are what tells the jobs apart)
	stamps = frappe.db.sql(
		"SELECT COUNT(DISTINCT creation) FROM `tabMessage Log` WHERE direction = 'Inbound' AND topic = %s",
		(topic,),
	)[0][0]
	assert 0 < stamps < n * 0.8, f"{stamps} storing jobs for {n} messages: a trickle was not joined"
	for p in range(3):  # handled in offset order per partition (rows are named in handling order)
		offsets = [r.kafka_offset for r in rows if r.kafka_partition == p]
		assert offsets == sorted(offsets)


def test_capture_queries_per_configured_save_do_not_grow_with_the_transaction(routes, frappe_site):
	"""2,000 configured inserts in one transaction: the capture hook issues the same, small number of
	queries for the last save as for the second (a new schema version is checked once per save until
	the commit, and once the commit is seen, not at all)."""
	import frappe
	from frappe.database.database import Database

	from spine.producer import capture

	topic = unique("captureq")
	routes({"document_type": "ToDo", "topic": topic, "on_insert": 1, "on_update": 0})
	counting = {"on": False, "n": 0}
	original_sql, original_on_event = Database.sql, capture.on_event

	def sql(self, *args, **kwargs):
		if counting["on"]:
			counting["n"] += 1

		return original_sql(self, *args, **kwargs)

	def on_event(*args, **kwargs):
		counting["on"] = True
		try:
			return original_on_event(*args, **kwargs)
		finally:
			counting["on"] = False

	per_save = []
	Database.sql = sql
	capture.on_event = on_event
	hooks = frappe.get_doc_hooks()
	try:
		for i in range(2000):
			counting["n"] = 0
			frappe.get_doc({"doctype": "ToDo", "description": f"capture queries {topic} {i}"}).insert()
			per_save.append(counting["n"])
		frappe.db.commit()
		counting["n"] = 0
		frappe.get_doc({"doctype": "ToDo", "description": f"capture queries {topic} after"}).insert()
		after_commit = counting["n"]
		frappe.db.rollback()
	finally:
		Database.sql = original_sql
		capture.on_event = original_on_event
		frappe.db.delete("ToDo", {"description": ("like", f"capture queries {topic} %")})
		frappe.db.delete("Message Log", {"topic": topic})
		frappe.db.commit()
	assert hooks, "doc hooks were read"
	assert (
		max(per_save[1:]) == per_save[1] == per_save[-1]
	), f"queries per save changed: {sorted(set(per_save))}"
	assert per_save[1] <= 2, f"{per_save[1]} queries per configured save (the outbox row, the schema check)"
	assert after_commit < per_save[1], "after the commit the schema version is known: no check"
