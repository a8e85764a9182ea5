"""``schema.fits`` remembers jsonschema's answer per payload shape: it must give jsonschema's answer
for every payload, whatever came before it."""

from __future__ import annotations

import json

import pytest

from spine.registry.schemas import for_registry
from spine.schema import build_schema, fits, parse_field_spec, validator

FIELDS = [
	{"fieldname": "title", "fieldtype": "Data", "reqd": 1},
	{"fieldname": "qty", "fieldtype": "Int"},
	{"fieldname": "rate", "fieldtype": "Float"},
	{"fieldname": "status", "fieldtype": "Select", "options": "Open\nClosed"},
	{"fieldname": "due", "fieldtype": "Date"},
]
BASE = {"name": "D-1", "doctype": "Doc", "docstatus": 0, "modified": "2026-12-07 10:00:00", "title": "a",
	"qty": 1, "rate": 2.5, "status": "Open", "due": None}  # fmt: skip
VARIANTS = [
	{},
	{"title": "another title"},  # same shape, other value
	{"status": "Closed"},
	{"status": "Shut"},  # not an option
	{"qty": "3"},  # a string where an integer goes
	{"qty": 3.0},  # JSON Schema's integer takes 3.0
	{"qty": 3.5},
	{"qty": True},
	{"extra": 1},  # a key the schema does not name
	{"_user_tags": "x"},  # Frappe's own _-prefixed keys are allowed
	{"docstatus": 3},
	{"doctype": "Other"},
]


@pytest.mark.parametrize("registry", [False, True], ids=["spine", "registry"])
def test_fits_gives_jsonschemas_answer_for_every_payload_whatever_came_before(registry):
	schema = build_schema("Doc", FIELDS, parse_field_spec(None), "t")
	if registry:
		schema = for_registry(schema)
	text = json.dumps(schema, sort_keys=True)
	payloads = [{**BASE, **v} for v in VARIANTS]
	payloads += [{k: v for k, v in BASE.items() if k != "title"}]  # a required field missing
	payloads += [dict(reversed(p.items())) for p in payloads]  # the same keys in another order
	answers = [validator(text).is_valid(p) for p in payloads]
	assert True in answers and False in answers, "the variants include both kinds"
	for _ in range(2):  # the second time every shape is remembered
		assert [fits(p, text) for p in payloads] == answers
	for p, expected in zip(reversed(payloads), reversed(answers), strict=True):
		assert fits(p, text) == expected


def test_a_schema_it_does_not_take_apart_is_validated_every_time():
	text = json.dumps({"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]+$"}}})
	assert fits({"code": "ABC"}, text) and not fits({"code": "abc"}, text)
	text = json.dumps({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}})
	assert fits({"n": 2}, text) and not fits({"n": 0}, text)
