"""Spine on a locked-down Kafka: TLS, SASL/SCRAM and ACLs (``tests/apache_kafka/security.py``).

Site A (SPINE_SITE) logs in as ``spine-a``, site B (SPINE_SITE2) as ``spine-b``, each allowed exactly
the ACLs the README's "Least ACLs" lists for what it does: A publishes ToDos to a topic B consumes,
and answers B's requests. The broker makes no topic for them (no Create ACL): the operator's topics
are made up front by ``admin``.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.bench.helpers import BenchProcess, on_site, site_kafka, unique, wait_for

pytestmark = pytest.mark.slow

PASSWORDS = {"spine-a": "a-secret-1", "spine-b": "b-secret-2"}
HANDLER = "spine.demo.add_comment_row"


@pytest.fixture(scope="module")
def secure(frappe_site):
	from tests.apache_kafka.security import SecureKraftCluster

	kafka = SecureKraftCluster(1, users=PASSWORDS).start()
	try:
		yield kafka
	finally:
		kafka.stop()


def least_acls(site: str, user: str, *, publishes: list[str], consumes: list[str], group: str,
		requests_to: list[str] = ()) -> list:  # fmt: skip
	"""The ACLs the README lists for a site's processes (principal ``User:<user>``)."""
	from confluent_kafka.admin import (
		AclBinding,
		AclOperation,
		AclPermissionType,
		ResourcePatternType,
		ResourceType,
	)

	from spine.config.topics import INITIAL_SYNC_TOPIC, KEYS_TOPIC, REPLY_PREFIX, SCHEMAS_TOPIC, reply_topic

	principal = f"User:{user}"

	def allow(rtype, name, op, pattern=ResourcePatternType.LITERAL):
		return AclBinding(rtype, name, pattern, principal, "*", op, AclPermissionType.ALLOW)

	acls = [allow(ResourceType.BROKER, "kafka-cluster", AclOperation.IDEMPOTENT_WRITE)]
	# spine-relay: its topics, Spine's own, and the reply topics of the sites it answers
	for topic in [*publishes, KEYS_TOPIC, SCHEMAS_TOPIC, INITIAL_SYNC_TOPIC]:
		acls.append(allow(ResourceType.TOPIC, topic, AclOperation.WRITE))
	acls.append(allow(ResourceType.TOPIC, REPLY_PREFIX, AclOperation.WRITE, ResourcePatternType.PREFIXED))
	# a caller of spine.request publishes the request itself
	acls += [allow(ResourceType.TOPIC, t, AclOperation.WRITE) for t in requests_to]
	# eventdispatcher: what it follows, and its group
	for topic in [*consumes, KEYS_TOPIC, INITIAL_SYNC_TOPIC, reply_topic(site)]:
		acls.append(allow(ResourceType.TOPIC, topic, AclOperation.READ))
	acls.append(allow(ResourceType.GROUP, group, AclOperation.READ))
	return acls


def _admin(secure):
	from confluent_kafka.admin import AdminClient

	return AdminClient(secure.admin_conf())


def _create(secure, topics: list[str]) -> None:
	from confluent_kafka.admin import NewTopic

	from spine.config.topics import own_topic_config

	admin = _admin(secure)
	futures = admin.create_topics([NewTopic(t, 1, config=own_topic_config(t)) for t in topics])
	for f in futures.values():
		with contextlib.suppress(Exception):  # Spine's own topics exist after the first test
			f.result(30)


def _grant(secure, acls: list) -> None:
	admin = _admin(secure)
	for f in admin.create_acls(acls).values():
		f.result(30)


def _revoke(secure, acls: list) -> None:
	from confluent_kafka.admin import AclBindingFilter

	admin = _admin(secure)
	filters = [AclBindingFilter(a.restype, a.name, a.resource_pattern_type, a.principal, a.host,
		a.operation, a.permission_type) for a in acls]  # fmt: skip
	for f in admin.delete_acls(filters).values():
		f.result(30)


@contextlib.contextmanager
def _site_block(site: str, conf: dict):
	import frappe
	from frappe.installer import update_site_config

	with on_site(site):
		before = frappe.get_site_config().get("kafka")
		update_site_config("kafka", conf)
	try:
		yield
	finally:
		with on_site(site):
			update_site_config("kafka", before if before is not None else "None")


@contextlib.contextmanager
def _consumer_rows(site: str, rows: list[dict]):
	import frappe

	from tests.bench.helpers import restore_single

	with on_site(site):
		saved = frappe.get_single("Spine Consumer Config").as_dict()
		doc = frappe.get_single("Spine Consumer Config")
		doc.enabled = 1
		doc.set("configs", rows)
		doc.save(ignore_permissions=True)
	try:
		yield
	finally:
		with on_site(site):
			restore_single("Spine Consumer Config", saved, ("enabled",))


def _forget(*topics: str) -> None:
	"""Remove the test's outbound rows, whatever happened: no later relay on the site retries them."""
	import frappe

	frappe.db.rollback()
	frappe.db.sql("DELETE FROM `tabMessage Log` WHERE topic IN %s", (topics,))
	frappe.db.commit()


def _outbound(topic: str) -> dict[str, int]:
	import frappe

	frappe.db.rollback()
	return dict(frappe.db.sql(
		"SELECT status, COUNT(*) FROM `tabMessage Log` WHERE direction = 'Outbound' AND topic = %s GROUP BY status",
		(topic,),
	))  # fmt: skip


def test_the_whole_flow_and_request_reply_with_the_least_acls(secure, routes, frappe_site, second_site):
	import frappe

	from spine.config.topics import INITIAL_SYNC_TOPIC, KEYS_TOPIC, SCHEMAS_TOPIC, reply_topic

	a, b = frappe_site, second_site
	todos, asks = unique("sec-todos"), unique("sec-ask")
	group_a, group_b = unique("sec-a"), unique("sec-b")
	_create(
		secure, [todos, asks, KEYS_TOPIC, SCHEMAS_TOPIC, INITIAL_SYNC_TOPIC, reply_topic(a), reply_topic(b)]
	)
	acls = least_acls(a, "spine-a", publishes=[todos], consumes=[asks], group=group_a) + least_acls(
		b, "spine-b", publishes=[], consumes=[todos], group=group_b, requests_to=[asks]
	)
	_grant(secure, acls)
	procs = []
	try:
		with (
			site_kafka(secure.bootstrap_servers, **{**secure.client_conf("spine-a"), "group.id": group_a}),
			_site_block(b, {**secure.client_conf("spine-b"), "client.id": b, "group.id": group_b}),
			_consumer_rows(
				a, [{"topic": asks, "document_type": "Spine Request", "event_handler": "spine.demo.answer"}]
			),
			_consumer_rows(b, [{"topic": todos, "document_type": "ToDo", "event_handler": HANDLER}]),
		):
			routes({"document_type": "ToDo", "topic": todos, "on_update": 1})
			q = unique("q")
			procs = [BenchProcess("spine-relay"), BenchProcess("eventdispatcher", "--queue", q),
				BenchProcess("jsonworker", "--queue", q), BenchProcess("eventdispatcher", "--queue", q, site=b),
				BenchProcess("jsonworker", "--queue", q, site=b)]  # fmt: skip
			for p in (procs[1], procs[3]):
				wait_for(lambda p=p: "assigned" in p.output(), 90, what=p.output)
			names = [
				frappe.get_doc({"doctype": "ToDo", "description": f"secure {i}"}).insert().name
				for i in range(20)
			]
			frappe.db.commit()

			def handled_on_b() -> int:
				with on_site(b):
					frappe.db.rollback()
					return frappe.db.count(
						"Message Log", {"topic": todos, "direction": "Inbound", "status": "Processed"}
					)

			wait_for(lambda: handled_on_b() >= 20, 90,
				what=lambda: "\n".join(p.output()[-1500:] for p in procs))  # fmt: skip
			with on_site(b):
				handled = frappe.get_all("Message Log", {"topic": todos, "direction": "Inbound",
					"status": "Processed"}, pluck="document_name")  # fmt: skip
			assert sorted(handled) == sorted(names), "B handled each of A's ToDos once"
			with on_site(b):
				import spine

				reply = spine.request(asks, {"question": "who?"}, timeout=30)
			assert reply == {"echo": {"question": "who?"}, "site": a}, reply
	finally:
		for p in procs:
			p.stop()
		_revoke(secure, acls)
	own = (todos, asks, KEYS_TOPIC, SCHEMAS_TOPIC, INITIAL_SYNC_TOPIC, reply_topic(a), reply_topic(b))
	refused = [line for p in procs for line in p.output().splitlines()
		if "AUTHORIZATION" in line and any(t in line for t in own)]  # fmt: skip
	assert not refused, f"a process was refused something it needs: {refused[:3]}"


@pytest.mark.parametrize("case", ["wrong password", "unknown CA", "expired certificate"])
def test_a_refused_login_or_tls_handshake_is_one_error_line_and_loses_nothing(
	secure, routes, frappe_site, case
):
	import frappe

	from spine.producer import relay

	topic = unique("sec-refused")
	_create(secure, [topic])
	acls = least_acls(frappe_site, "spine-a", publishes=[topic], consumes=[topic], group=unique("g"))
	_grant(secure, acls)
	good = secure.client_conf("spine-a")
	bad = {
		"wrong password": {**good, "sasl.password": "not-the-password"},
		"unknown CA": {**good, "ssl.ca.location": str(secure.certs.other_ca)},
		"expired certificate": secure.client_conf("spine-a", port=secure.expired_port),
	}[case]
	expected = "refused the login" if case == "wrong password" else "TLS handshake failed"
	try:
		with site_kafka(secure.bootstrap_servers, **bad):
			routes({"document_type": "ToDo", "topic": topic, "on_update": 1})
			for args in (["spine-status"], ["spine-relay"], ["eventdispatcher", "--queue", unique("q")]):
				proc = BenchProcess(*args)
				assert proc.proc.wait(120) == 1, proc.output()[-2000:]
				out = proc.output()
				errors = [line for line in out.splitlines() if line.startswith("Error:")]
				assert len(errors) == 1 and expected in errors[0] and "Traceback" not in out, out[-2000:]
			frappe.get_doc({"doctype": "ToDo", "description": f"saved while refused ({case})"}).insert()
			frappe.db.commit()
			relay.drain()
			assert _outbound(topic) == {"Pending": 1}, "held, not lost, not Failed"
		with site_kafka(secure.bootstrap_servers, **good):
			frappe.db.sql("UPDATE `tabMessage Log` SET next_attempt_at = NULL WHERE topic = %s", (topic,))
			frappe.db.commit()
			relay.drain()
			assert _outbound(topic) == {"Published": 1}, "the fixed block sends it"
	finally:
		_revoke(secure, acls)
		_forget(topic)


def test_a_topic_without_write_acl_is_held_pending_and_goes_out_once_allowed(secure, routes, frappe_site):
	import frappe
	from confluent_kafka.admin import (
		AclBinding,
		AclOperation,
		AclPermissionType,
		ResourcePatternType,
		ResourceType,
	)

	from spine.desk.status import collect, render
	from spine.producer import relay

	allowed, denied = unique("sec-ok"), unique("sec-denied")
	_create(secure, [allowed, denied])
	acls = least_acls(frappe_site, "spine-a", publishes=[allowed], consumes=[], group=unique("g"))
	_grant(secure, acls)
	missing = AclBinding(ResourceType.TOPIC, denied, ResourcePatternType.LITERAL, "User:spine-a", "*",
		AclOperation.WRITE, AclPermissionType.ALLOW)  # fmt: skip
	try:
		with site_kafka(secure.bootstrap_servers, **secure.client_conf("spine-a")):
			routes({"document_type": "ToDo", "topic": allowed, "on_update": 1},
				{"document_type": "ToDo", "topic": denied, "on_update": 1})  # fmt: skip
			for i in range(5):
				frappe.get_doc({"doctype": "ToDo", "description": f"acl {i}"}).insert()
			frappe.db.commit()
			relay.drain()
			assert _outbound(allowed) == {"Published": 5}, "other topics keep flowing"
			assert _outbound(denied) == {"Pending": 5}, "held: not lost, not Failed"
			frappe.db.rollback()
			errors = frappe.get_all("Message Log", {"topic": denied}, pluck="last_error")
			assert all("TOPIC_AUTHORIZATION_FAILED" in (e or "") for e in errors), errors
			report = collect(with_lag=False)
			assert any(denied in p and "add the ACL" in p for p in report["problems"]), render(report)
			_grant(secure, [missing])
			frappe.db.sql("UPDATE `tabMessage Log` SET next_attempt_at = NULL WHERE topic = %s", (denied,))
			frappe.db.commit()
			wait_for(lambda: (relay.drain(), _outbound(denied))[1] == {"Published": 5}, 60,
				what=lambda: f"the held rows published: {_outbound(denied)}")  # fmt: skip
	finally:
		_revoke(secure, [*acls, missing])
		_forget(allowed, denied)
