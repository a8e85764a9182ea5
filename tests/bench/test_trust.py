"""Trust between two sites on one broker: A signs what it publishes, B checks it against its Spine
Trusted Site rows, its rows' *Require signature* and *Accept from*, and its Sync Rules'."""

from __future__ import annotations

import copy
import json
import time

import pytest

from tests.bench.helpers import Courier, on_site, produce, restore_single, site_kafka, unique

HANDLER = "spine.demo.record_call"


@pytest.fixture
def sites(frappe_site, second_site, kafka_bootstrap):
	"""A (publishing ToDo to a new topic) and B on the test broker; B's keys of A forgotten before and
	after; every config put back afterwards."""
	import frappe
	from frappe.installer import update_site_config

	from spine.producer import signing_key
	from tests.brokers import client_settings

	a, b = frappe_site, second_site
	topic = unique("trust")
	saved_a = frappe.get_single("Spine Producer Config").as_dict()
	signing_key.ensure_key()
	frappe.db.commit()
	with on_site(b):
		before_b = frappe.get_site_config().get("kafka")
		update_site_config(
			"kafka", {"bootstrap.servers": kafka_bootstrap, "client.id": b, **client_settings()}
		)
		saved_b = frappe.get_single("Spine Consumer Config").as_dict()
		frappe.db.delete("Spine Trusted Site", {"site": a})
	doc = frappe.get_single("Spine Producer Config")
	doc.enabled = 1
	doc.set("configs", [{"document_type": "ToDo", "topic": topic, "on_update": 1}])
	doc.save(ignore_permissions=True)
	frappe.db.commit()
	try:
		with site_kafka(kafka_bootstrap):
			yield a, b, topic
	finally:
		restore_single("Spine Producer Config", saved_a, ("enabled",))
		with on_site(b):
			restore_single(
				"Spine Consumer Config",
				saved_b,
				("enabled", "retry_backoff_seconds", "retry_backoff_max_seconds"),
			)
			frappe.db.delete("Spine Trusted Site", {"site": a})
			update_site_config("kafka", before_b if before_b is not None else "None")


def consume_on_b(b: str, topic: str, **row) -> None:
	import frappe

	with on_site(b):
		doc = frappe.get_single("Spine Consumer Config")
		doc.enabled = 1
		doc.set("configs", [{"topic": topic, "document_type": "ToDo", "event_handler": HANDLER, **row}])
		doc.retry_backoff_seconds, doc.retry_backoff_max_seconds = 1, 2
		doc.save(ignore_permissions=True)


def publish_todo(description: str) -> str:
	"""Save a ToDo on A and publish it (the relay's pass); returns its message id."""
	import frappe

	from spine.producer import relay

	todo = frappe.get_doc({"doctype": "ToDo", "description": description}).insert(ignore_permissions=True)
	frappe.db.commit()
	relay.drain()
	return frappe.db.get_value(
		"Message Log", {"direction": "Outbound", "document_name": todo.name}, "message_id"
	)


def publish_key() -> None:
	import frappe

	from spine.producer import relay, signing_key

	signing_key.publish_key()
	frappe.db.commit()
	relay.drain()


def entry(message_id: str) -> dict:
	import frappe

	frappe.db.rollback()
	return frappe.db.get_value("Message Log", {"direction": "Inbound", "message_id": message_id},
		["name", "status", "last_error"], as_dict=True)  # fmt: skip


def key_row(a: str):
	import frappe

	frappe.db.rollback()
	return frappe.db.get_value("Spine Trusted Site", {"site": a}, ["name", "status", "key_id", "endorsed_by"],
		as_dict=True, order_by="creation desc")  # fmt: skip


def replay(name: str) -> None:
	import frappe

	from spine.consumer import processor
	from spine.desk import actions

	actions.apply("replay", [name])
	frappe.db.commit()
	processor.process(max_seconds=30)


def signed_envelope(topic: str, **header) -> tuple[dict, tuple]:
	"""An envelope signed with A's key (the current site's), after ``header`` changes were made."""
	from spine import envelope
	from spine.producer import own_key

	env = envelope.build(doctype="ToDo", docname=unique("T"), event="on_update", topic=topic,
		payload={"description": "crafted"}, origin="a", origin_site=header.pop("origin_site", None) or _site())  # fmt: skip
	body = copy.deepcopy(env.body)
	body["Header"].update(header)
	own_key.sign_body(body)
	return body, (env.key, json.dumps(body).encode(), env.headers())


def _site() -> str:
	import frappe

	return frappe.local.site


def test_an_unknown_key_waits_and_is_handled_after_trust_and_replay(sites, kafka_bootstrap):
	import frappe

	a, b, topic = sites
	consume_on_b(b, topic, require_signature=1)
	first = publish_todo("before B knows A's key")
	with on_site(b):
		Courier(kafka_bootstrap, [topic]).deliver(expect=1)
		row = entry(first)
		assert row.status == "Skipped" and "has not received" in row.last_error, row
	publish_key()
	with on_site(b):
		Courier(kafka_bootstrap, ["spine.keys"]).deliver()
		key = key_row(a)
		assert key and key.status == "Pending", "a key seen for the first time waits for a System Manager"
		replay(row.name)
		row = entry(first)
		assert row.status == "Skipped" and "waits for a System Manager" in row.last_error, row
		doc = frappe.get_doc("Spine Trusted Site", key.name)
		doc.status = "Trusted"
		doc.save(ignore_permissions=True)
		frappe.db.commit()
		replay(row.name)
		assert entry(first).status == "Processed"


def test_forged_origin_changed_payload_and_revoked_key_are_refused(sites, kafka_bootstrap):
	import frappe

	a, b, topic = sites
	consume_on_b(b, topic)  # nothing required: still, a signature that lies is refused
	publish_key()
	with on_site(b):
		Courier(kafka_bootstrap, ["spine.keys"]).deliver()
		frappe.db.set_value("Spine Trusted Site", key_row(a).name, "status", "Trusted")
		frappe.db.commit()
	forged, forged_record = signed_envelope(topic, origin_site="ho.example.com")
	changed, (key, _, headers) = signed_envelope(topic)
	changed["Payload"]["description"] = "changed after signing"
	produce(kafka_bootstrap, topic, [forged_record, (key, json.dumps(changed).encode(), headers)])
	with on_site(b):
		Courier(kafka_bootstrap, [topic]).deliver(expect=2)
		forged_row, changed_row = entry(forged["Header"]["MessageId"]), entry(changed["Header"]["MessageId"])
		assert forged_row.status == "Invalid" and "says it comes from ho.example.com" in forged_row.last_error
		assert changed_row.status == "Invalid" and "does not match" in changed_row.last_error
		frappe.db.set_value("Spine Trusted Site", key_row(a).name, "status", "Revoked")
		frappe.db.commit()
	revoked = publish_todo("signed by a key B revoked")
	with on_site(b):
		Courier(kafka_bootstrap, [topic]).deliver(expect=1)
		row = entry(revoked)
		assert row.status == "Invalid" and "revoked" in row.last_error


def test_rotation_is_trusted_through_the_old_key_and_refuses_nothing(sites, kafka_bootstrap):
	import frappe

	from spine.producer import signing_key

	a, b, topic = sites
	consume_on_b(b, topic, require_signature=1)
	publish_key()
	with on_site(b):
		Courier(kafka_bootstrap, ["spine.keys"]).deliver()
		frappe.db.set_value("Spine Trusted Site", key_row(a).name, "status", "Trusted")
		frappe.db.commit()
	old_key = frappe.get_single("Spine Settings").signing_key_id
	before = publish_todo("signed with the old key")
	new_key = signing_key.rotate()
	frappe.db.commit()
	after = publish_todo("signed with the new key")
	with on_site(b):
		# the messages first, the new key after them (another topic can be read first): the one signed
		# with the new key is tried again shortly, not refused
		Courier(kafka_bootstrap, [topic]).deliver(expect=2)
		row = entry(after)
		assert entry(before).status == "Processed"
		assert row.status == "Error" and "a rotation on its way" in row.last_error, row
		Courier(kafka_bootstrap, ["spine.keys"]).deliver()
		rotated = frappe.db.get_value(
			"Spine Trusted Site", {"key_id": new_key}, ["status", "endorsed_by"], as_dict=True
		)
		assert rotated == {"status": "Trusted", "endorsed_by": old_key}
		from spine.consumer import processor

		time.sleep(2.5)  # the row's retry comes due (backoff 1 s, at most 2 s)
		processor.process(max_seconds=30)
		assert entry(after).status == "Processed"


def test_a_sync_rule_that_accepts_only_head_office_ignores_a_branch(sites, kafka_bootstrap):
	import frappe

	a, b, topic = sites
	publish_key()
	with on_site(b):
		Courier(kafka_bootstrap, ["spine.keys"]).deliver()
		frappe.db.set_value("Spine Trusted Site", key_row(a).name, "status", "Trusted")
		consume = frappe.get_single("Spine Consumer Config")
		consume.enabled = 1
		consume.set("configs", [])
		consume.save(ignore_permissions=True)
		rule = frappe.get_doc({"doctype": "Spine Sync Rule", "title": unique("rule"), "topic": topic,
			"source_doctype": "ToDo", "accept_from": "ho.example.com"}).insert(ignore_permissions=True)  # fmt: skip
		frappe.db.commit()
	try:
		branch = publish_todo("from the branch")
		with on_site(b):
			Courier(kafka_bootstrap, [topic]).deliver(expect=1)
			row = entry(branch)
			assert row.status == "Skipped" and f"from {a}, which Spine Sync Rule" in row.last_error, row
			frappe.db.set_value("Spine Sync Rule", rule.name, "accept_from", f"ho.example.com\n{a}")
			frappe.db.commit()
			from spine.settings import config_cache

			config_cache.forget()
			replay(row.name)
			assert entry(branch).status == "Processed", "accepted once the rule names the branch"
	finally:
		with on_site(b):
			frappe.delete_doc("Spine Sync Rule", rule.name, ignore_permissions=True, force=True)


def test_a_reply_must_be_signed_where_the_caller_requires_it(sites):
	"""The dispatcher hands a reply to its waiting caller only if it passes the caller's rule, and the
	processor records a refused one as Invalid, saying why."""
	import frappe

	from spine.config.topics import reply_topic
	from spine.consumer import intake, processor
	from spine.rpc import replies
	from tests.bench.helpers import as_records, redis_cache

	a, b, topic = sites
	settings = frappe.get_single("Spine Settings")
	saved = settings.require_signed_replies
	frappe.db.set_single_value("Spine Settings", "require_signed_replies", 1)
	frappe.db.commit()
	frappe.clear_document_cache("Spine Settings", "Spine Settings")
	try:
		from spine import envelope

		correlation = envelope.new_message_id()
		unsigned = envelope.build(doctype="Spine Reply", docname=correlation, event="reply", topic=reply_topic(a),
			payload={"reply": {"ok": 1}}, origin="b", origin_site=b, extra_header={"CorrelationId": correlation})  # fmt: skip
		records = as_records(reply_topic(a), [unsigned])
		assert replies.deliver(records, reply_topic(a)) == 0, "an unsigned reply does not reach the caller"
		assert redis_cache().llen(redis_cache().make_key(f"spine:reply:{correlation}")) == 0
		intake.store(records)
		frappe.db.commit()
		processor.process(max_seconds=30)
		row = entry(unsigned.message_id)
		assert row.status == "Invalid" and "replies must be signed" in row.last_error, row

		frappe.db.set_single_value("Spine Settings", "require_signed_replies", 0)
		frappe.db.commit()
		frappe.clear_document_cache("Spine Settings", "Spine Settings")
		assert (
			replies.deliver(as_records(reply_topic(a), [unsigned]), reply_topic(a)) == 1
		), "not required: handed over"
	finally:
		frappe.db.set_single_value("Spine Settings", "require_signed_replies", saved or 0)
		frappe.db.commit()
		frappe.clear_document_cache("Spine Settings", "Spine Settings")


def test_unsigned_messages_of_the_original_adapter_are_handled_where_nothing_is_required(
	sites, kafka_bootstrap
):
	"""The original Spine Adapter's envelope (no MessageId, no signature) on a row with no requirement."""
	import frappe

	a, b, topic = sites
	consume_on_b(b, topic)
	name = unique("OLD")
	original = {"Header": {"Origin": "old-site", "Timestamp": "2026-11-22 14:03:07.123456", "DocType": "ToDo",
		"Event": "on_update", "Topic": topic}, "Payload": {"name": name, "description": "old"}, "Retry": {}}  # fmt: skip
	produce(kafka_bootstrap, topic, [(f"ToDo:{name}", json.dumps(original).encode(), None)])
	with on_site(b):
		Courier(kafka_bootstrap, [topic]).deliver(expect=1)
		frappe.db.rollback()
		statuses = frappe.get_all("Message Log", {"direction": "Inbound", "topic": topic}, pluck="status")
		assert statuses == ["Processed"]
