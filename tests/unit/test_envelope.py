import datetime
import decimal
import json

import pytest

from spine import envelope
from spine.errors import MalformedMessage

DOC = {
	"doctype": "Sales Invoice",
	"name": "SINV-0001",
	"posting_date": datetime.date(2026, 11, 22),
	"modified": datetime.datetime(2026, 11, 22, 14, 3, 7, 123456),
	"posting_time": datetime.timedelta(hours=9, minutes=30),
	"grand_total": decimal.Decimal("1234.567890000"),
	"items": [
		{
			"doctype": "Sales Invoice Item",
			"idx": 1,
			"rate": decimal.Decimal("10.50"),
			"qty": 3.0,
			"delivery_date": datetime.date(2026, 12, 1),
		},
		{
			"doctype": "Sales Invoice Item",
			"idx": 2,
			"rate": decimal.Decimal("0.1"),
			"qty": 1.0,
			"delivery_date": None,
		},
	],
}


def make(**kw):
	args = dict(
		doctype="Sales Invoice",
		docname="SINV-0001",
		event="on_submit",
		topic="invoices",
		payload=DOC,
		origin="client-a",
		origin_site="a.local",
	)
	args.update(kw)
	return envelope.build(**args)


def test_build_has_original_keys_and_spine_additions():
	env = make()
	body = json.loads(envelope.encode(env))
	assert set(body) >= {"Header", "Payload"}
	h = body["Header"]
	assert h["Origin"] == "client-a" and h["DocType"] == "Sales Invoice" and h["Event"] == "on_submit"
	assert h["Topic"] == "invoices" and h["DocName"] == "SINV-0001" and h["OriginSite"] == "a.local"
	assert h["SchemaVersion"] == envelope.SCHEMA_VERSION
	assert len(h["MessageId"]) == 32 and h["MessageId"] == env.message_id
	stamp = datetime.datetime.fromisoformat(h["Timestamp"])
	assert stamp.tzinfo is not None and "T" in h["Timestamp"], "ISO 8601 with the UTC offset"


def test_key_and_headers_carry_routing_facts():
	env = make()
	assert env.key == "Sales Invoice:SINV-0001"
	headers = dict(env.headers())
	assert headers[envelope.HEADER_MESSAGE_ID] == env.message_id.encode()
	assert headers[envelope.HEADER_DOCTYPE] == b"Sales Invoice"
	assert headers[envelope.HEADER_DOCNAME] == b"SINV-0001"
	assert headers[envelope.HEADER_EVENT] == b"on_submit"
	assert headers[envelope.HEADER_ORIGIN_SITE] == b"a.local"


def test_dates_decimals_and_child_tables_round_trip():
	env = envelope.parse(envelope.encode(make()))
	p = env.payload
	assert datetime.date.fromisoformat(p["posting_date"]) == DOC["posting_date"]
	assert datetime.datetime.fromisoformat(p["modified"]) == DOC["modified"]
	assert p["posting_time"] == "9:30:00"
	assert decimal.Decimal(str(p["grand_total"])) == DOC["grand_total"]
	assert [decimal.Decimal(str(i["rate"])) for i in p["items"]] == [
		decimal.Decimal("10.50"),
		decimal.Decimal("0.1"),
	]
	assert [i["idx"] for i in p["items"]] == [1, 2]
	assert p["items"][0]["delivery_date"] == "2026-12-01" and p["items"][1]["delivery_date"] is None
	assert env.message_id and env.docname == "SINV-0001" and env.schema_version == 2


def test_document_like_objects_are_serialised_with_as_dict():
	class Row:
		def as_dict(self):
			return {"doctype": "Child", "idx": 1, "when": datetime.date(2026, 1, 2)}

	env = make(payload={"name": "X", "items": [Row()]})
	assert env.payload["items"] == [{"doctype": "Child", "idx": 1, "when": "2026-01-02"}]


def test_original_spine_adapter_message_is_accepted():
	# as produced by the original app: frappe.as_json(event_payload, 2), no MessageId
	original = {
		"Payload": {"name": "ITEM-1", "doctype": "Item", "item_name": "Bolt"},
		"Header": {
			"Origin": "withrun.local",
			"Timestamp": "2019-08-17 02:24:22.235807",
			"DocType": "Item",
			"Event": "on_update",
			"Topic": "items",
		},
		"Retry": {},
	}
	env = envelope.parse(json.dumps(original, indent=2).encode())
	assert env.schema_version == 1 and env.message_id is None
	assert env.doctype == "Item" and env.event == "on_update" and env.docname == "ITEM-1"
	assert env.origin == "withrun.local" and env.topic == "items"
	assert env.body == original


def test_double_encoded_original_message_is_accepted():
	inner = {"Payload": {"name": "A"}, "Header": {"DocType": "Item", "Event": "on_update"}}
	env = envelope.parse(json.dumps(json.dumps(inner)).encode())
	assert env.doctype == "Item" and env.docname == "A"


@pytest.mark.parametrize(
	"value, reason",
	[
		(None, "no value"),
		(b"", "not JSON"),
		(b"\xff\xfe{}", "not valid UTF-8"),
		(b"{not json", "not JSON"),
		(b"[1, 2]", "not an object (got list)"),
		(b"42", "not an object (got int)"),
		(b'"just a string"', "not JSON"),
		(b"{}", "no 'Header' object"),
		(b'{"Header": [], "Payload": {}}', "no 'Header' object"),
		(
			b'{"Header": {"DocType": "Item", "Event": "on_update"}}',
			"'Payload' must be an object (got missing)",
		),
		(
			b'{"Header": {"DocType": "Item", "Event": "on_update"}, "Payload": [1]}',
			"'Payload' must be an object (got list)",
		),
		(b'{"Header": {"Event": "on_update"}, "Payload": {}}', "Header.DocType must be a non-empty string"),
		(
			b'{"Header": {"DocType": 5, "Event": "x"}, "Payload": {}}',
			"Header.DocType must be a non-empty string",
		),
		(
			b'{"Header": {"DocType": "Item", "Event": ""}, "Payload": {}}',
			"Header.Event must be a non-empty string",
		),
		(
			b'{"Header": {"DocType": "I", "Event": "e", "MessageId": 7}, "Payload": {}}',
			"Header.MessageId must be a string",
		),
		(
			b'{"Header": {"DocType": "I", "Event": "e", "SchemaVersion": "2"}, "Payload": {}}',
			"SchemaVersion must be an integer",
		),
		(
			b'{"Header": {"DocType": "I", "Event": "e", "SchemaVersion": 99, "MessageId": "m"}, "Payload": {}}',
			"newer than this Spine",
		),
		(
			b'{"Header": {"DocType": "I", "Event": "e", "SchemaVersion": 2}, "Payload": {}}',
			"has no Header.MessageId",
		),
		(
			b'{"Header": {"DocType": "I", "Event": "e", "Timestamp": {}}, "Payload": {}}',
			"Timestamp must be a string",
		),
		(b"[" * 100000 + b"]" * 100000, "not JSON"),
	],
)
def test_garbage_gives_a_typed_readable_error(value, reason):
	with pytest.raises(MalformedMessage) as e:
		envelope.parse(value)
	assert reason in e.value.reason


def test_oversize_is_refused_before_decoding():
	big = envelope.encode(make(payload={"name": "X", "blob": "x" * 5000}))
	with pytest.raises(MalformedMessage, match="bytes; the limit is 1,000 bytes"):
		envelope.parse(big, max_bytes=1000)
	assert envelope.parse(big, max_bytes=len(big)).docname == "SINV-0001"


def test_arbitrary_bytes_never_raise_anything_else():
	import random

	rng = random.Random(7)
	samples = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))) for _ in range(2000)]
	samples += [b'{"Header": {"DocType": "I", "Event": "e"}, "Payload": ' + s + b"}" for s in samples[:200]]
	for s in samples:
		try:
			envelope.parse(s)
		except MalformedMessage:
			pass


def test_column_value_keeps_what_fits_and_shortens_the_rest_without_merging():
	from spine.envelope import column_value

	assert column_value("3f0c" * 8, 140, exact=True) == "3f0c" * 8
	assert column_value(None, 140) is None
	long_a, long_b = "x" * 140 + "a", "x" * 140 + "b"
	short_a, short_b = column_value(long_a, 140, exact=True), column_value(long_b, 140, exact=True)
	assert short_a != short_b and len(short_a) <= 140 and short_a.startswith("x" * 60)
	assert column_value(long_a, 140, exact=True) == short_a, "the same id is always stored the same way"
	# a case- and accent-insensitive collation must not see these as one id
	stored = {column_value(v, 140, exact=True) for v in ("Order-1", "order-1", "order-1 ", "Ordér-1")}
	assert len({s.lower().rstrip() for s in stored}) == 4
	assert column_value("Order-1", 140) == "Order-1", "non-unique columns keep readable values"
	assert column_value("k" * 301, 300) != column_value("k" * 300 + "j", 300)
