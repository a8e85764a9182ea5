"""CloudEvents and Spine (spine/cloudevents.py): the binary-mode headers on every message, and a
structured-mode event from another producer read as an envelope."""

from __future__ import annotations

import json

import pytest

from spine import cloudevents, envelope
from spine.errors import MalformedMessage


def _env():
	return envelope.build(doctype="Sales Invoice", docname="SINV-1", event="on_submit", topic="invoices",
		payload={"name": "SINV-1", "total": 10}, origin="a", origin_site="a.example.com")  # fmt: skip


def test_every_message_describes_itself_in_binary_mode():
	env = _env()
	headers = dict(env.headers())
	assert headers["ce_specversion"] == b"1.0"
	assert headers["ce_id"] == env.message_id.encode()
	assert headers["ce_source"] == b"a.example.com"
	assert headers["ce_type"] == b"frappe.Sales Invoice.on_submit"
	assert headers["ce_subject"] == b"SINV-1"
	assert headers["ce_partitionkey"] == env.key.encode() == b"Sales Invoice:SINV-1"
	assert headers["ce_time"] == env.timestamp.encode()
	assert headers["content-type"] == b"application/json"
	assert headers["spine-message-id"] == env.message_id.encode(), "Spine's own headers stay"
	assert not [k for k, _ in env.headers(cloud_events=False) if k.startswith("ce_")]


def test_a_structured_cloudevent_becomes_an_envelope():
	event = {"specversion": "1.0", "id": "evt-1", "source": "//orders.example.com", "type": "frappe.ToDo.on_update",
		"time": "2026-12-07T10:00:00Z", "subject": "T-1", "datacontenttype": "application/json",
		"data": {"description": "from a service"}}  # fmt: skip
	env = envelope.parse(json.dumps(event), content_type=cloudevents.STRUCTURED, topic="todos")
	assert (env.doctype, env.event, env.docname, env.message_id) == ("ToDo", "on_update", "T-1", "evt-1")
	assert env.origin_site == "//orders.example.com" and env.topic == "todos"
	assert env.payload == {"description": "from a service"}
	assert env.body["Header"]["CloudEvent"]["type"] == "frappe.ToDo.on_update"


def test_a_foreign_type_is_its_own_doctype():
	event = {
		"specversion": "1.0",
		"id": "e",
		"source": "s",
		"type": "com.example.order.created",
		"data": {"n": 1},
	}
	env = envelope.parse(json.dumps(event))  # known by its attributes, without a content type
	assert (env.doctype, env.event) == ("com.example.order.created", cloudevents.FOREIGN_EVENT)


@pytest.mark.parametrize(
	"event, reason",
	[
		(
			{"specversion": "1.0", "id": "e", "source": "s", "type": "t", "data": [1]},
			"data must be a JSON object",
		),
		({"specversion": "1.0", "id": "", "source": "s", "type": "t"}, "'id' must be a non-empty string"),
		({"specversion": "0.3", "id": "e", "source": "s", "type": "t"}, "specversion 0.3 is not 1.x"),
	],
)
def test_a_cloudevent_spine_cannot_take_says_why(event, reason):
	with pytest.raises(MalformedMessage, match=reason):
		envelope.parse(json.dumps(event), content_type=cloudevents.STRUCTURED)
