"""What Spine's own transactions lock in Message Log: only their rows, never where new rows go.

A processing batch keeps its rows locked while the handlers run (seconds, for a slow handler); the
relay marks a batch Published. Meanwhile users keep saving documents, and every save of a
configured DocType inserts an Outbound row into the same table. Each test holds what Spine holds,
with Spine's own statements, in this process's transaction, and saves from a second connection as
a user's request would, with a 2 s lock wait: a save that waits for Spine's commit fails the test.
"""

from __future__ import annotations

import pytest

from tests.bench.helpers import as_records, spine_message, unique


def _raw_connection():
	"""A second connection to the site's database, as another request or process has."""
	import frappe
	import pymysql

	conn = pymysql.connect(
		host=frappe.conf.db_host or "127.0.0.1", port=int(frappe.conf.db_port or 3306),
		user=frappe.conf.db_user or frappe.conf.db_name, password=frappe.conf.db_password,
		database=frappe.conf.db_name, autocommit=False, charset="utf8mb4",
	)  # fmt: skip
	with conn.cursor() as cur:
		cur.execute("SET SESSION innodb_lock_wait_timeout = 2")
	return conn


SAVES_TOPIC = unique("locks-saves")


def _capture_from_elsewhere(conn) -> None:
	"""What a user's save of a configured DocType writes: an Outbound row, with capture's statement."""
	from spine import envelope, message_log
	from spine.producer import capture

	env = envelope.build(doctype="ToDo", docname=unique("save"), event="on_update", topic=SAVES_TOPIC,
		payload={"description": "saved meanwhile"}, origin="s", origin_site="s")  # fmt: skip
	with conn.cursor() as cur:
		cur.execute(message_log.OUTBOUND_INSERT_SQL, capture.row_values(env))
	conn.commit()


@pytest.fixture(autouse=True)
def no_saves_left(frappe_site):
	"""The Outbound rows these tests save are removed (no relay of a later test publishes them)."""
	import frappe

	yield
	frappe.db.rollback()
	frappe.db.sql("DELETE FROM `tabMessage Log` WHERE topic = %s", SAVES_TOPIC)
	frappe.db.commit()


@pytest.fixture
def stored_batch(frappe_site):
	"""200 Inbound Pending rows stored by the intake (committed): a processing batch's rows."""
	import frappe

	from spine.consumer import intake

	topic = unique("locks")
	envs = [spine_message(topic, "ToDo", f"lock-{i}")[0] for i in range(200)]
	intake.store(as_records(topic, envs))
	frappe.db.commit()
	names = [
		r[0]
		for r in frappe.db.sql(
			"SELECT name FROM `tabMessage Log` WHERE direction = 'Inbound' AND topic = %s ORDER BY name",
			topic,
		)
	]
	yield names, [e.message_id for e in envs]
	frappe.db.rollback()
	frappe.db.sql("DELETE FROM `tabMessage Log` WHERE topic = %s", topic)
	frappe.db.commit()


def test_a_processing_batch_holds_up_no_save(stored_batch):
	import frappe

	from spine import message_log

	names, _ = stored_batch
	other = _raw_connection()
	try:
		locked = message_log.lock_due(names, 500)
		assert len(locked) == len(names), "the batch holds its rows"
		_capture_from_elsewhere(other)  # while the handlers would run
		message_log.set_status(names, message_log.PROCESSED)
		_capture_from_elsewhere(other)  # while the statuses wait for the batch's commit
	finally:
		frappe.db.rollback()
		other.close()


def test_an_intake_job_handling_what_it_stored_holds_up_no_save(stored_batch):
	import frappe

	from spine import message_log

	_, message_ids = stored_batch
	other = _raw_connection()
	try:
		locked = message_log.lock_stored(message_ids)
		assert len(locked) == len(message_ids)
		_capture_from_elsewhere(other)
	finally:
		frappe.db.rollback()
		other.close()


def test_the_relay_marking_a_batch_published_holds_up_no_save(frappe_site):
	import frappe

	from spine import message_log

	other = _raw_connection()
	try:
		for _ in range(200):
			_capture_from_elsewhere(other)
		rows = [r for r in message_log.due_outbound(1000) if r.topic == SAVES_TOPIC]
		assert len(rows) == 200
		message_log.published([(r.name, 0, i) for i, r in enumerate(rows)])
		_capture_from_elsewhere(other)
	finally:
		frappe.db.rollback()
		other.close()
