"""Chosen fields, the JSON Schema of a route's payload, its version, and payload validation."""

from spine import schema

TODO_FIELDS = [
	{"fieldname": "status", "fieldtype": "Select", "options": "Open\nClosed", "reqd": 1},
	{"fieldname": "description", "fieldtype": "Text Editor"},
	{"fieldname": "date", "fieldtype": "Date"},
	{"fieldname": "allocated_to", "fieldtype": "Link", "options": "User"},
	{"fieldname": "sb", "fieldtype": "Section Break"},
	{"fieldname": "items", "fieldtype": "Table", "options": "ToDo Item", "fields": [
		{"fieldname": "item_code", "fieldtype": "Link", "options": "Item", "reqd": 1},
		{"fieldname": "qty", "fieldtype": "Float"},
		{"fieldname": "note", "fieldtype": "Data"},
	]},
]  # fmt: skip
DOC = {
	"name": "T-1", "doctype": "ToDo", "modified": "2026-11-23 10:00:00", "docstatus": 0, "owner": "a@b",
	"status": "Open", "description": "x", "date": "2026-11-23", "allocated_to": "a@b",
	"items": [{"name": "r1", "idx": 1, "doctype": "ToDo Item", "item_code": "I-1", "qty": 2.0, "note": "n", "parent": "T-1"}],
}  # fmt: skip


def test_spec_parsing_and_selection():
	spec = schema.parse_field_spec("status, items.item_code\nitems.qty")
	assert (
		not spec.all and spec.fields == ("status", "items") and spec.tables == {"items": ("item_code", "qty")}
	)
	out = schema.select(DOC, spec, ["items"])
	assert set(out) == {"name", "doctype", "modified", "docstatus", "status", "items"}, "always the four"
	assert out["items"] == [{"name": "r1", "idx": 1, "doctype": "ToDo Item", "item_code": "I-1", "qty": 2.0}]
	whole = schema.select(DOC, schema.parse_field_spec("items"), ["items"])
	assert whole["items"] == DOC["items"], "a table named alone keeps every field of its rows"
	assert schema.select(DOC, schema.parse_field_spec(""), ["items"]) == DOC, "empty spec: everything"
	assert schema.FieldSpec.from_dict(spec.to_dict()) == spec


def test_schema_types_required_links_and_children():
	s = schema.build_schema(
		"ToDo", TODO_FIELDS, schema.parse_field_spec("status, allocated_to, items.item_code"), "todos"
	)
	props = s["properties"]
	assert set(props) == {"name", "doctype", "modified", "docstatus", "status", "allocated_to", "items"}
	assert props["allocated_to"]["x-frappe-link"] == "User" and "string" in props["allocated_to"]["type"]
	assert props["status"]["enum"][:2] == ["Open", "Closed"] and "status" in s["required"]
	row = props["items"]["items"]
	assert props["items"]["type"] == "array" and set(row["properties"]) == {
		"name",
		"idx",
		"doctype",
		"item_code",
	}
	assert row["required"] == ["item_code", "name"]


def test_version_changes_only_with_the_published_shape():
	spec = schema.parse_field_spec("status, date")
	base = schema.version(schema.build_schema("ToDo", TODO_FIELDS, spec, "todos"))
	assert base == schema.version(schema.build_schema("ToDo", TODO_FIELDS, spec, "todos")), "stable"
	added = schema.version(
		schema.build_schema(
			"ToDo", TODO_FIELDS, schema.parse_field_spec("status, date, description"), "todos"
		)
	)
	retyped = [dict(f, fieldtype="Datetime") if f["fieldname"] == "date" else f for f in TODO_FIELDS]
	assert len({base, added, schema.version(schema.build_schema("ToDo", retyped, spec, "todos"))}) == 3
	unpublished_change = [*TODO_FIELDS, {"fieldname": "priority", "fieldtype": "Data"}]
	assert (
		schema.version(schema.build_schema("ToDo", unpublished_change, spec, "todos")) == base
	), "a field the route does not publish changes nothing"


def test_first_error_names_the_field():
	s = schema.build_schema("ToDo", TODO_FIELDS, schema.FieldSpec(), "todos")
	assert schema.first_error(DOC, s) is None
	assert schema.first_error({**DOC, "status": "Gone"}, s).startswith("Payload.status must be one of")
	assert (
		schema.first_error({k: v for k, v in DOC.items() if k != "status"}, s) == "Payload.status is required"
	)
	bad_row = {**DOC, "items": [{**DOC["items"][0], "qty": "two"}]}
	assert schema.first_error(bad_row, s) == "Payload.items[0].qty must be number or null (got str)"
