"""Document sync between two sites of one bench through one broker: site A publishes, site B applies
by Spine Sync Rules (and both ways). Site A is SPINE_SITE, site B SPINE_SITE2."""

from __future__ import annotations

import json

import pytest

from tests.bench.helpers import Courier, on_site, site_kafka, unique, wait_for

MASTER, INVOICE, ITEM = "Spine Sync Master", "Spine Sync Invoice", "Spine Sync Invoice Item"


def make_doctypes() -> None:
	"""A master, and a submittable document with a child table linking to the master (on the current site)."""
	import frappe

	if not frappe.db.exists("DocType", MASTER):
		frappe.get_doc({
			"doctype": "DocType", "name": MASTER, "module": "Spine Adapter", "custom": 1, "autoname": "prompt",
			"allow_rename": 1,
			"fields": [
				{"fieldname": "code", "fieldtype": "Data", "label": "Code", "unique": 1},
				{"fieldname": "title", "fieldtype": "Data", "label": "Title"},
				{"fieldname": "price", "fieldtype": "Float", "label": "Price"},
				{"fieldname": "region", "fieldtype": "Data", "label": "Region"},
			],
			"permissions": [{"role": "System Manager", "read": 1, "write": 1, "create": 1, "delete": 1}],
		}).insert(ignore_permissions=True)  # fmt: skip
	if not frappe.db.exists("DocType", ITEM):
		frappe.get_doc({
			"doctype": "DocType", "name": ITEM, "module": "Spine Adapter", "custom": 1, "istable": 1,
			"fields": [
				{"fieldname": "master", "fieldtype": "Link", "label": "Master", "options": MASTER, "reqd": 1},
				{"fieldname": "qty", "fieldtype": "Float", "label": "Qty"},
			],
		}).insert(ignore_permissions=True)  # fmt: skip
	if not frappe.db.exists("DocType", INVOICE):
		frappe.get_doc({
			"doctype": "DocType", "name": INVOICE, "module": "Spine Adapter", "custom": 1, "autoname": "prompt",
			"is_submittable": 1,
			"fields": [
				{"fieldname": "customer", "fieldtype": "Data", "label": "Customer"},
				{"fieldname": "items", "fieldtype": "Table", "label": "Items", "options": ITEM},
				{"fieldname": "amended_from", "fieldtype": "Link", "label": "Amended From", "options": INVOICE,
					"read_only": 1, "no_copy": 1},
			],
			"permissions": [{"role": "System Manager", "read": 1, "write": 1, "create": 1, "delete": 1,
				"submit": 1, "cancel": 1, "amend": 1}],
		}).insert(ignore_permissions=True)  # fmt: skip
	frappe.db.commit()


@pytest.fixture(scope="module")
def two_sites(frappe_site, second_site):
	make_doctypes()
	with on_site(second_site):
		make_doctypes()
	return frappe_site, second_site


@pytest.fixture
def both_kafka(two_sites, kafka_bootstrap):
	"""Both sites on the test broker (their kafka blocks restored afterwards)."""
	import frappe
	from frappe.installer import update_site_config

	from tests.brokers import client_settings

	a, b = two_sites
	with on_site(b):
		before_b = frappe.get_site_config().get("kafka")
		update_site_config(
			"kafka", {"bootstrap.servers": kafka_bootstrap, "client.id": b, **client_settings()}
		)
	try:
		with site_kafka(kafka_bootstrap):
			yield a, b
	finally:
		with on_site(b):
			update_site_config("kafka", before_b if before_b is not None else "None")


@pytest.fixture
def configs(two_sites):
	"""Set producer routes and sync rules on either site; everything restored afterwards."""
	import frappe

	from tests.bench.helpers import restore_single

	touched: dict[str, dict] = {}

	def producer(site: str, *rows: dict) -> None:
		with on_site(site):
			touched.setdefault(
				site, {"producer": frappe.get_single("Spine Producer Config").as_dict(), "rules": []}
			)
			doc = frappe.get_single("Spine Producer Config")
			doc.enabled = 1
			doc.set("configs", list(rows))
			doc.save(ignore_permissions=True)

	def rule(site: str, **values) -> str:
		with on_site(site):
			touched.setdefault(
				site, {"producer": frappe.get_single("Spine Producer Config").as_dict(), "rules": []}
			)
			doc = frappe.get_doc({"doctype": "Spine Sync Rule", "title": unique("rule"), **values})
			doc.insert(ignore_permissions=True)
			touched[site]["rules"].append(doc.name)
			return doc.name

	yield producer, rule
	for site, saved in touched.items():
		with on_site(site):
			restore_single("Spine Producer Config", saved["producer"], ("enabled",))
			for name in saved["rules"]:
				frappe.delete_doc("Spine Sync Rule", name, ignore_permissions=True, force=True)


def publish() -> int:
	"""The relay's pass on the current site."""
	from spine.producer import relay

	return relay.drain()


def local(doctype: str, name: str, *fields: str):
	import frappe

	frappe.db.rollback()
	return frappe.db.get_value(doctype, name, list(fields) or "name", as_dict=bool(fields))


def inbound(topic: str) -> list:
	import frappe

	frappe.db.rollback()
	return frappe.get_all("Message Log", {"direction": "Inbound", "topic": topic},
		["name", "status", "document_name", "last_error", "waiting_for", "attempt_history", "event"], order_by="name")  # fmt: skip


def test_a_master_is_mirrored_insert_update_rename_delete(both_kafka, configs):
	import frappe

	a, b = both_kafka
	producer, rule = configs
	topic = unique("masters")
	producer(
		a,
		{
			"document_type": MASTER,
			"topic": topic,
			"on_insert": 1,
			"on_update": 1,
			"on_trash": 1,
			"after_rename": 1,
		},
	)
	rule(b, topic=topic, source_doctype=MASTER, on_delete="Delete here")
	name = unique("M")
	courier = Courier(frappe.local.conf.kafka["bootstrap.servers"], [topic])
	try:
		master = frappe.get_doc(
			{"doctype": MASTER, "__newname": name, "code": name, "title": "first", "price": 10}
		)
		master.insert()
		frappe.db.commit()
		master.title, master.price = "second", 12.5
		master.save()
		frappe.db.commit()
		publish()
		with on_site(b):
			courier.deliver(expect=3)  # after_insert, on_update (insert), on_update
			assert local(MASTER, name, "title", "price") == {"title": "second", "price": 12.5}
			entry = frappe.db.get_value(
				"Spine Document Map", {"remote_name": name}, ["origin_site", "local_name"], as_dict=True
			)
			assert entry == {"origin_site": a, "local_name": name}
		renamed = name + "-R"
		frappe.rename_doc(MASTER, name, renamed)
		frappe.db.commit()
		publish()
		with on_site(b):
			courier.deliver(expect=1)
			assert local(MASTER, renamed) and not local(MASTER, name)
		frappe.delete_doc(MASTER, renamed)
		frappe.db.commit()
		publish()
		with on_site(b):
			courier.deliver(expect=1)
			assert not local(MASTER, renamed)
			assert {r.status for r in inbound(topic)} == {"Processed"}, inbound(topic)
	finally:
		courier.close()


def _hold(*names: str) -> None:
	"""Keep these documents' outbound rows back (as a relay retry would), so later ones overtake them."""
	import frappe

	frappe.db.sql(
		"UPDATE `tabMessage Log` SET next_attempt_at = DATE_ADD(NOW(), INTERVAL 1 DAY) "
		"WHERE direction = 'Outbound' AND status = 'Pending' AND document_name IN %s",
		(names,),
	)
	frappe.db.commit()


def _release(*names: str) -> None:
	import frappe

	frappe.db.sql(
		"UPDATE `tabMessage Log` SET next_attempt_at = NULL WHERE direction = 'Outbound' "
		"AND status = 'Pending' AND document_name IN %s",
		(names,),
	)
	frappe.db.commit()


@pytest.mark.parametrize("held", ["insert and update", "update only"])
def test_a_rename_that_overtakes_earlier_messages_ends_as_the_source(both_kafka, configs, held):
	"""A rename travels under the new name's Kafka key, so it can reach the other site before the old
	name's earlier messages (found by the soak: the old document came back after the rename was
	skipped). Whatever the order, B ends with the document under its new name, with the source's
	values, and the old name's late messages bring nothing back."""
	import frappe

	a, b = both_kafka
	producer, rule = configs
	topic = unique("rename-race")
	producer(a, {"document_type": MASTER, "topic": topic, "on_insert": 1, "on_update": 1, "after_rename": 1})
	rule(b, topic=topic, source_doctype=MASTER, on_delete="Delete here")
	name = unique("OLD")
	courier = Courier(_bootstrap(), [topic])
	try:
		if held == "update only":  # the insert reaches B first
			_master(name, price=1)
			frappe.db.commit()
			publish()
			with on_site(b):
				courier.deliver(expect=2)
		else:
			_master(name, price=1)
			frappe.db.commit()
		master = frappe.get_doc(MASTER, name)
		master.title, master.price = "changed before the rename", 2
		master.save()
		frappe.db.commit()
		_hold(name)
		renamed = name + "-NEW"
		frappe.rename_doc(MASTER, name, renamed)
		frappe.db.commit()
		publish()  # only the rename goes out: the old name's rows are held back
		with on_site(b):
			courier.deliver(expect=1)
		_release(name)
		publish()
		with on_site(b):
			courier.deliver(expect=1 if held == "update only" else 3)
			assert not local(MASTER, name), "the old name did not come back"
			assert local(MASTER, renamed, "title", "price") == {
				"title": "changed before the rename",
				"price": 2,
			}
			statuses = {r.event: r.status for r in inbound(topic) if r.status != "Processed"}
			assert set(statuses.values()) <= {"Skipped"}, inbound(topic)
			late = [r for r in inbound(topic) if r.status == "Skipped"]
			assert all("renamed" in r.last_error for r in late), [r.last_error for r in late]
	finally:
		courier.close()


def test_a_second_rename_that_overtakes_the_first_waits_for_it(both_kafka, configs):
	"""Renamed twice at the source (M1 → M2 → M3), each rename travels under its new name's Kafka key,
	so the second can reach the other site first (found by the soak, seed 8: M3 was inserted there
	while M1 still held its unique code, and Frappe's refusal marked it Failed). It waits for the
	document that holds the code, and once the first rename is applied it renames M2 to M3."""
	import frappe

	from spine.consumer import processor

	a, b = both_kafka
	producer, rule = configs
	topic = unique("rename-twice")
	producer(a, {"document_type": MASTER, "topic": topic, "on_insert": 1, "on_update": 1, "after_rename": 1})
	rule(b, topic=topic, source_doctype=MASTER, on_delete="Delete here")
	first = unique("M1")
	second, third = first + "-2", first + "-3"
	courier = Courier(_bootstrap(), [topic])
	try:
		_master(first, price=1)
		frappe.db.commit()
		publish()
		with on_site(b):
			courier.deliver(expect=1)
			assert local(MASTER, first)
		frappe.rename_doc(MASTER, first, second)
		frappe.db.commit()
		_hold(first, second)
		frappe.rename_doc(MASTER, second, third)
		master = frappe.get_doc(MASTER, third)
		master.price = 3
		master.save()
		frappe.db.commit()
		publish()  # the second rename and the update after it go out; the first rename is held back
		with on_site(b):
			courier.deliver(expect=2)
			rows = {r.event: r for r in inbound(topic) if r.document_name == third}
			assert rows["after_rename"].status == "Waiting", rows
			assert rows["after_rename"].waiting_for == f"{MASTER}:{first}", rows
			assert local(MASTER, first) and not local(MASTER, third), "nothing applied out of order"
		_release(first, second)
		publish()
		with on_site(b):
			courier.deliver(expect=1)
			processor.process(max_seconds=30)  # the woken messages of the second name
			frappe.db.commit()
			assert not local(MASTER, first) and not local(MASTER, second)
			assert local(MASTER, third, "code", "price") == {"code": first, "price": 3}
			statuses = [(r.event, r.status, r.last_error) for r in inbound(topic)]
			assert all(status == "Processed" for _, status, _ in statuses), statuses
	finally:
		courier.close()


def test_an_amended_document_that_overtakes_its_original_waits_for_it(both_kafka, configs):
	"""The amendment travels under its own name's Kafka key, so it can reach the other site before the
	original it amends (found by the soak: Frappe refused it, "Could not find Amended From", and it was
	marked Failed). It waits for the original, then applies."""
	import frappe

	a, b = both_kafka
	producer, rule = configs
	topic = unique("amend-race")
	producer(a, {"document_type": MASTER, "topic": topic, "on_insert": 1, "on_update": 0},
		{"document_type": INVOICE, "topic": topic, "on_insert": 1, "on_update": 1, "on_submit": 1, "on_cancel": 1})  # fmt: skip
	rule(b, topic=topic, source_doctype=MASTER)
	rule(b, topic=topic, source_doctype=INVOICE, follow_submit=1)
	courier = Courier(_bootstrap(), [topic])
	try:
		m = _master(unique("M"))
		frappe.db.commit()
		publish()
		with on_site(b):
			courier.deliver(expect=2)
		inv = frappe.get_doc({"doctype": INVOICE, "__newname": unique("INV"), "customer": "C1",
			"items": [{"master": m.name, "qty": 2}]}).insert()  # fmt: skip
		inv.submit()
		inv.cancel()
		amended = frappe.copy_doc(inv)
		amended.amended_from = inv.name
		amended.insert()
		amended.submit()
		frappe.db.commit()
		_hold(inv.name)
		publish()  # only the amendment goes out
		with on_site(b):
			courier.deliver(expect=4)  # its insert and submit: on_update, after_insert, on_update, on_submit
			first, *later = [r for r in inbound(topic) if r.document_name == amended.name]
			assert (first.status, first.waiting_for) == ("Waiting", f"{INVOICE}:{inv.name}"), first
			assert {r.status for r in later} == {"Pending"}, "its later messages wait behind it"
		_release(inv.name)
		publish()
		with on_site(b):
			courier.deliver(expect=5)  # the original's insert, submit and cancel
			assert local(INVOICE, inv.name, "docstatus")["docstatus"] == 2
			copy = frappe.get_doc(INVOICE, amended.name)
			assert copy.docstatus == 1 and copy.amended_from == inv.name
			assert {r.status for r in inbound(topic)} == {"Processed"}, inbound(topic)
	finally:
		courier.close()


def _bootstrap() -> str:
	import frappe

	return frappe.local.conf.kafka["bootstrap.servers"]


def _master(name: str, **values):
	import frappe

	return frappe.get_doc(
		{"doctype": MASTER, "__newname": name, "code": name, "title": name, **values}
	).insert()


def test_submit_cancel_amend_follow_with_child_rows_and_links(both_kafka, configs):
	import frappe

	a, b = both_kafka
	producer, rule = configs
	topic = unique("invoices")
	producer(
		a,
		{"document_type": MASTER, "topic": topic, "on_insert": 1, "on_update": 0},
		{
			"document_type": INVOICE,
			"topic": topic,
			"on_insert": 1,
			"on_update": 1,
			"on_submit": 1,
			"on_cancel": 1,
		},
	)
	rule(b, topic=topic, source_doctype=MASTER)
	rule(b, topic=topic, source_doctype=INVOICE)
	courier = Courier(_bootstrap(), [topic])
	try:
		m = _master(unique("M"))
		inv = frappe.get_doc({"doctype": INVOICE, "__newname": unique("INV"), "customer": "C1",
			"items": [{"master": m.name, "qty": 2}, {"master": m.name, "qty": 3}]}).insert()  # fmt: skip
		inv.submit()
		frappe.db.commit()
		inv.cancel()
		amended = frappe.copy_doc(inv)
		amended.amended_from = inv.name
		amended.items[0].qty = 7
		amended.insert()
		amended.submit()
		frappe.db.commit()
		publish()
		with on_site(b):
			courier.deliver(expect=8)
			assert local(INVOICE, inv.name, "docstatus")["docstatus"] == 2, "cancelled like the source"
			copy = frappe.get_doc(INVOICE, amended.name)
			assert copy.docstatus == 1 and copy.amended_from == inv.name
			assert [(r.master, r.qty) for r in copy.items] == [(m.name, 7), (m.name, 3)]
			assert {r.status for r in inbound(topic)} == {"Processed"}, inbound(topic)
	finally:
		courier.close()


def test_match_by_natural_key_and_by_document_map_rewrites_links(both_kafka, configs):
	import frappe

	a, b = both_kafka
	producer, rule = configs
	by_key, by_map = unique("bykey"), unique("bymap")
	producer(
		a,
		{"document_type": MASTER, "topic": by_key, "on_insert": 1, "on_update": 1},
		{"document_type": MASTER, "topic": by_map, "on_insert": 1, "on_update": 0},
		{"document_type": INVOICE, "topic": by_map, "on_insert": 1, "on_update": 0},
	)
	code = unique("CODE")
	with on_site(b):  # B has this master already, under its own name
		mine = _master(unique("B-LOCAL"), code=code, title="B's own")
		frappe.db.commit()
	rule(b, topic=by_key, source_doctype=MASTER, find_by="Match fields", match_fields="code")
	rule(b, topic=by_map, source_doctype=MASTER, find_by="Document Map")
	rule(b, topic=by_map, source_doctype=INVOICE, find_by="Document Map")
	courier = Courier(_bootstrap(), [by_key, by_map])
	try:
		same = _master(unique("A-NAME"), code=code, title="from A")
		other = _master(unique("A-OTHER"), code=unique("CODE"))
		inv = frappe.get_doc(
			{"doctype": INVOICE, "__newname": unique("INV"), "items": [{"master": other.name, "qty": 1}]}
		)
		inv.insert()
		frappe.db.commit()
		with on_site(b):  # B has another master that happens to carry the same name: names clash
			_master(other.name, code=unique("B-CODE"), title="B's own, same name")
			frappe.db.commit()
		publish()
		with on_site(b):
			courier.deliver(expect=5)
			assert local(MASTER, mine.name, "title")["title"] == "from A", "found by its code, not its name"
			assert not local(MASTER, same.name)
			mapped_master = frappe.db.get_value("Spine Document Map", {"remote_name": other.name, "document_type": MASTER},
				"local_name")  # fmt: skip
			mapped_invoice = frappe.db.get_value("Spine Document Map", {"remote_name": inv.name, "document_type": INVOICE},
				"local_name")  # fmt: skip
			assert mapped_master == f"{other.name}-2", "a new local name, remembered"
			assert local(MASTER, other.name, "title")["title"] == "B's own, same name", "B's own untouched"
			assert frappe.get_doc(INVOICE, mapped_invoice).items[0].master == mapped_master, "link rewritten"
	finally:
		courier.close()


def test_a_document_linking_to_a_master_not_here_waits_then_applies(both_kafka, configs):
	import frappe

	a, b = both_kafka
	producer, rule = configs
	topic = unique("waits")
	producer(a, {"document_type": INVOICE, "topic": topic, "on_insert": 1, "on_update": 0},
		{"document_type": MASTER, "topic": topic, "on_insert": 1, "on_update": 1})  # fmt: skip
	rule(b, topic=topic, source_doctype=INVOICE)
	rule(b, topic=topic, source_doctype=MASTER)
	courier = Courier(_bootstrap(), [topic])
	try:
		m = _master(unique("LATE"))
		frappe.db.commit()
		frappe.db.sql(
			"DELETE FROM `tabMessage Log` WHERE direction = 'Outbound' AND document_name = %s", m.name
		)
		frappe.db.commit()  # the master's event is lost on the way: B gets the invoice first
		inv = frappe.get_doc(
			{"doctype": INVOICE, "__newname": unique("INV"), "items": [{"master": m.name, "qty": 1}]}
		)
		inv.insert()
		other = _master(unique("OK"))  # an unrelated document goes on meanwhile
		frappe.db.commit()
		publish()
		with on_site(b):
			courier.deliver(expect=2)
			rows = {r.document_name: r for r in inbound(topic)}
			assert rows[inv.name].status == "Waiting" and rows[inv.name].waiting_for == f"{MASTER}:{m.name}"
			assert f"waiting for {MASTER} {m.name}" in (rows[inv.name].last_error or ""), rows[
				inv.name
			].last_error
			assert rows[other.name].status == "Processed" and local(MASTER, other.name)
		m.title = "now it is published"
		m.save()
		frappe.db.commit()
		publish()
		with on_site(b):
			courier.deliver(expect=1)
			rows = {r.document_name: r for r in inbound(topic)}
			assert rows[inv.name].status == "Processed", rows[inv.name]
			assert frappe.get_doc(INVOICE, inv.name).items[0].master == m.name
	finally:
		courier.close()


def test_a_late_or_replayed_older_message_is_skipped(both_kafka, configs):
	import frappe

	from spine.desk import actions

	a, b = both_kafka
	producer, rule = configs
	topic = unique("late")
	producer(a, {"document_type": MASTER, "topic": topic, "on_insert": 0, "on_update": 1})
	rule(b, topic=topic, source_doctype=MASTER)
	courier = Courier(_bootstrap(), [topic])
	try:
		m = _master(unique("M"), price=1)
		frappe.db.commit()
		first = frappe.db.get_value("Message Log", {"direction": "Outbound", "document_name": m.name}, "name")
		m.price = 2
		m.save()
		frappe.db.commit()
		publish()
		with on_site(b):
			courier.deliver(expect=2)
			assert local(MASTER, m.name, "price")["price"] == 2
		actions.apply("republish", [first])  # the old version again, as a new message
		frappe.db.commit()
		publish()
		with on_site(b):
			courier.deliver(expect=1)
			assert local(MASTER, m.name, "price")["price"] == 2, "the older version did not overwrite"
			late = inbound(topic)[-1]
			assert late.status == "Skipped" and "older than what was applied" in late.last_error, late
	finally:
		courier.close()


def test_two_way_sync_converges_without_ping_pong(both_kafka, configs):
	import frappe

	a, b = both_kafka
	producer, rule = configs
	topic = unique("twoway")
	route = {"document_type": MASTER, "topic": topic, "on_insert": 1, "on_update": 1}
	producer(a, route)
	producer(b, route)
	rule(a, topic=topic, source_doctype=MASTER)
	rule(b, topic=topic, source_doctype=MASTER)
	to_a, to_b = Courier(_bootstrap(), [topic]), Courier(_bootstrap(), [topic])
	try:
		m = _master(unique("M"), price=1)
		frappe.db.commit()
		publish()
		with on_site(b):
			to_b.deliver(expect=2)
			assert publish() == 0, "B applied A's change and publishes nothing back"
			doc = frappe.get_doc(MASTER, m.name)
			doc.price = 5  # a later local edit on B is published as usual
			doc.save()
			frappe.db.commit()
			assert publish() == 1
		to_a.deliver(expect=3)  # A reads the topic: its own two (skipped) and B's edit
		assert local(MASTER, m.name, "price")["price"] == 5
		assert publish() == 0, "A applied B's edit and publishes nothing back"
		with on_site(b):
			assert to_b.deliver(timeout=3) == 1, "only B's own message: no echo"
			assert local(MASTER, m.name, "price")["price"] == 5
		statuses = sorted(r.status for r in inbound(topic))
		assert statuses == ["Processed", "Skipped", "Skipped"], statuses  # A's own two are skipped as A's
	finally:
		to_a.close()
		to_b.close()


def test_a_refused_document_fails_alone_and_retry_works_after_fixing_the_rule(both_kafka, configs):
	import frappe

	from spine.desk import actions

	a, b = both_kafka
	producer, rule = configs
	topic = unique("refused")
	producer(a, {"document_type": MASTER, "topic": topic, "on_insert": 1, "on_update": 0})
	with on_site(b):  # on B the region is mandatory (a master that differs per site)
		frappe.get_doc({"doctype": "Property Setter", "doctype_or_field": "DocField", "doc_type": MASTER,
			"field_name": "region", "property": "reqd", "value": "1", "property_type": "Check"}).insert(ignore_permissions=True)  # fmt: skip
		frappe.clear_cache(doctype=MASTER)
	name = rule(b, topic=topic, source_doctype=MASTER)
	courier = Courier(_bootstrap(), [topic])
	try:
		bad, good = _master(unique("NOREGION")), _master(unique("WITHREGION"), region="north")
		frappe.db.commit()
		publish()
		with on_site(b):
			courier.deliver(expect=2)
			rows = {r.document_name: r for r in inbound(topic)}
			assert rows[good.name].status == "Processed"
			assert rows[bad.name].status == "Failed", rows[bad.name]
			history = frappe.db.get_value("Message Log", rows[bad.name].name, "attempt_history")
			assert "region" in history and "Mapped values" in history, history
			doc = frappe.get_doc("Spine Sync Rule", name)
			doc.append("field_map", {"local_field": "region", "constant": "default"})
			doc.save(ignore_permissions=True)
			actions.apply("retry", [rows[bad.name].name])
			frappe.db.commit()
			from spine.consumer import processor

			processor.process(max_seconds=10)
			assert local(MASTER, bad.name, "region")["region"] == "default"
	finally:
		courier.close()
		with on_site(b):
			frappe.db.delete("Property Setter", {"doc_type": MASTER, "field_name": "region"})
			frappe.clear_cache(doctype=MASTER)


def test_preview_says_what_a_rule_would_do_without_saving(both_kafka, configs):
	import frappe

	a, b = both_kafka
	producer, rule = configs
	topic = unique("preview")
	producer(a, {"document_type": MASTER, "topic": topic, "on_insert": 1, "on_update": 0})
	courier = Courier(_bootstrap(), [topic])
	try:
		m = _master(unique("M"), price=3)
		frappe.db.commit()
		publish()
		with on_site(b):
			name = rule(
				b, topic=unique("elsewhere"), source_doctype=MASTER
			)  # not this topic: nothing applied
			courier.deliver(expect=1)
			stored = inbound(topic)[0]
			shown = frappe.get_doc("Spine Sync Rule", name).preview(stored.name)
			assert shown["action"] == "create" and shown["local_name"] is None
			assert ["price", None, 3.0] in shown["changes"] or ["price", None, 3] in shown["changes"], shown
			assert not local(MASTER, m.name), "a preview saves nothing"
	finally:
		courier.close()


def test_backfill_by_docstatus_brings_drafts_submitted_and_cancelled_documents_in_their_state(
	both_kafka, configs
):
	import frappe

	from spine.producer.backfill import BY_DOCSTATUS, backfill

	a, b = both_kafka
	producer, rule = configs
	topic = unique("existing")
	m = _master(unique("M"))
	states = {}
	for docstatus in (0, 1, 2):
		inv = frappe.get_doc({"doctype": INVOICE, "__newname": unique("INV"), "customer": f"C{docstatus}",
			"items": [{"master": m.name, "qty": docstatus + 1}]}).insert()  # fmt: skip
		if docstatus:
			inv.submit()
		if docstatus == 2:
			inv.cancel()
		states[inv.name] = docstatus
	frappe.db.commit()
	# only now does anything publish: these documents existed before the sync was set up
	producer(a, {"document_type": MASTER, "topic": topic, "on_insert": 1},
		{"document_type": INVOICE, "topic": topic, "on_insert": 1, "on_submit": 1, "on_cancel": 1},
		{"document_type": INVOICE, "topic": unique("other"), "on_insert": 1})  # fmt: skip
	rule(b, topic=topic, source_doctype=MASTER)
	rule(b, topic=topic, source_doctype=INVOICE, follow_submit=1)
	courier = Courier(_bootstrap(), [topic])
	try:
		backfill(MASTER, {"name": m.name}, topic=topic, event=BY_DOCSTATUS)
		backfill(INVOICE, {"name": ("in", list(states))}, topic=topic, event=BY_DOCSTATUS)
		captured = frappe.get_all("Message Log", {"direction": "Outbound", "topic": topic}, pluck="event")
		assert sorted(captured) == sorted(["on_update", "on_update", "on_submit", "on_submit", "on_cancel"])
		assert not frappe.get_all(
			"Message Log",
			{"direction": "Outbound", "document_name": ("in", list(states)), "topic": ("!=", topic)},
		), "only the route to the asked topic is backfilled"
		publish()
		with on_site(b):
			courier.deliver(expect=5)
			assert {n: local(INVOICE, n, "docstatus")["docstatus"] for n in states} == states
			assert {r.status for r in inbound(topic)} == {"Processed"}, inbound(topic)
	finally:
		courier.close()


@pytest.mark.slow
def test_initial_sync_button_brings_1000_existing_documents_with_the_real_processes(both_kafka, configs):
	import frappe

	from tests.bench.helpers import BenchProcess, restore_single

	a, b = both_kafka
	producer, rule = configs
	topic = unique("initial")
	prefix = unique("EX")
	names = [f"{prefix}-{i:04d}" for i in range(1000)]
	frappe.db.delete(MASTER)  # what earlier tests left: the 1,000 below are all A has
	for name in names:  # existing documents, from before any sync was set up
		frappe.get_doc(
			{"doctype": MASTER, "__newname": name, "code": name, "title": name, "price": len(name)}
		).insert()
	frappe.db.commit()
	producer(a, {"document_type": MASTER, "topic": topic, "on_insert": 1, "on_update": 1})
	rule_name = rule(b, topic=topic, source_doctype=MASTER)
	with on_site(b):
		saved_b = frappe.get_single("Spine Consumer Config").as_dict()
		consumer = frappe.get_single("Spine Consumer Config")
		consumer.enabled = 1
		consumer.save(ignore_permissions=True)
		frappe.db.commit()
	queue = unique("q")
	processes = []
	# A's dispatcher in a group of its own: the default group's offsets on spine.sync.initial are
	# shared with every earlier test of the session (and positions stored by earlier broker sessions)
	own_group = site_kafka(_bootstrap(), **{"group.id": unique("initial-group")})
	own_group.__enter__()
	try:
		processes = [
			BenchProcess("eventdispatcher", "--queue", queue),
			BenchProcess("jsonworker", "--queue", queue),
			BenchProcess("spine-relay"),
			BenchProcess("worker", "--queue", "long"),  # runs the queued backfill
			BenchProcess("eventdispatcher", "--queue", queue, site=b),
			BenchProcess("jsonworker", "--queue", queue, site=b),
			BenchProcess("spine-relay", site=b),
		]
		wait_for(lambda: "spine.sync.initial" in processes[0].output(), 60, what=processes[0].output)
		wait_for(lambda: topic in processes[4].output(), 60, what=processes[4].output)
		with on_site(b):
			answer = frappe.get_doc("Spine Sync Rule", rule_name).request_initial_sync()
			assert [r["site"] for r in answer["replies"]] == [a], answer
			assert f"{a}: publishing 1,000" in answer["message"], answer

			def synced() -> int:
				frappe.db.rollback()
				return frappe.db.count(MASTER, {"name": ("like", f"{prefix}-%")})

			wait_for(lambda: synced() == 1000, 180, interval=1,
				what=lambda: f"{synced()} of 1000 synced\n" + "\n".join(p.output()[-1500:] for p in processes))  # fmt: skip
			assert local(MASTER, names[-1], "price")["price"] == len(names[-1])
			assert {r.status for r in inbound(topic)} == {"Processed"}
	finally:
		for p in processes:
			p.stop()
		own_group.__exit__(None, None, None)
		with on_site(b):
			restore_single("Spine Consumer Config", saved_b, ("enabled",))
		frappe.db.delete(MASTER, {"name": ("like", f"{prefix}-%")})
		frappe.db.commit()
		with on_site(b):
			frappe.db.delete(MASTER, {"name": ("like", f"{prefix}-%")})
			frappe.db.delete("Spine Document Map", {"remote_name": ("like", f"{prefix}-%")})
