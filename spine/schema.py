"""What a producer route publishes, as data: chosen fields, a JSON Schema of the payload, its version,
and a validator for payloads against such a schema. Plain Python: never imports Frappe.

A route's *field spec* is text, one entry per line or comma: ``status``, ``items`` (a child table,
every field of its rows) or ``items.item_code`` (a child table, only the fields named). An empty
spec means every field. ``name``, ``doctype``, ``modified`` and ``docstatus`` are always published
(and ``name``, ``idx``, ``doctype`` of child rows), so consumers can always tell what they got.

Fields are described to ``build_schema`` as plain dicts (``fieldname``, ``fieldtype``, ``reqd``,
``options``, and ``fields`` for child tables), which the Frappe side reads from DocType meta.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import jsonschema.protocols

from spine.config.topics import SCHEMAS_TOPIC

SCHEMA_TOPIC = SCHEMAS_TOPIC  # compacted: the latest schema of each topic and DocType
SCHEMA_DOCTYPE = "Spine Payload Schema"
ALWAYS = ("name", "doctype", "modified", "docstatus")
ALWAYS_IN_ROWS = ("name", "idx", "doctype")
DRAFT = "https://json-schema.org/draft/2020-12/schema"

_INTEGER = {"Int", "Check", "Long Int"}
_NUMBER = {"Float", "Currency", "Percent", "Rating", "Duration"}
_NO_VALUE = {"Section Break", "Column Break", "Tab Break", "HTML", "Button", "Fold", "Heading", "Image"}
TABLES = {"Table", "Table MultiSelect"}


@dataclass(frozen=True)
class FieldSpec:
	"""Which fields a route publishes. ``all`` = every field; else ``fields`` and, per child table,
	``None`` (every field of its rows) or the tuple of child fields."""

	all: bool = True
	fields: tuple[str, ...] = ()
	tables: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)

	def to_dict(self) -> dict[str, Any]:
		return {"all": self.all, "fields": list(self.fields), "tables": {k: list(v) if v is not None else None
			for k, v in self.tables.items()}}  # fmt: skip

	@classmethod
	def from_dict(cls, data: Mapping[str, Any] | None) -> FieldSpec:
		if not data or data.get("all", True):
			return cls()
		return cls(False, tuple(data["fields"]), {k: tuple(v) if v is not None else None
			for k, v in data["tables"].items()})  # fmt: skip


def parse_field_spec(text: str | None) -> FieldSpec:
	"""The spec written in Desk; empty text means every field."""
	entries = [e.strip() for line in (text or "").splitlines() for e in line.split(",") if e.strip()]
	if not entries:
		return FieldSpec()
	fields: list[str] = []
	tables: dict[str, list[str] | None] = {}
	for entry in entries:
		table, dot, child = entry.partition(".")
		if dot:
			if tables.get(table, []) is not None:
				tables.setdefault(table, []).append(child)
			if table not in fields:
				fields.append(table)
		else:
			if entry not in fields:
				fields.append(entry)
	return FieldSpec(
		False,
		tuple(fields),
		{t: (tuple(c) if c is not None else None) for t, c in tables.items()},
	)


def select(payload: Mapping[str, Any], spec: FieldSpec, table_fields: Iterable[str] = ()) -> dict[str, Any]:
	"""``payload`` cut to ``spec``; ``table_fields`` names the fields that hold child rows."""
	if spec.all:
		return dict(payload)
	tables = set(table_fields)
	out = {k: payload[k] for k in ALWAYS if k in payload}
	for name in spec.fields:
		if name not in payload:
			continue
		value = payload[name]
		chosen = spec.tables.get(name)
		if name in tables and chosen is not None and isinstance(value, list):
			keep = (*ALWAYS_IN_ROWS, *chosen)
			value = [{k: row[k] for k in keep if k in row} for row in value if isinstance(row, Mapping)]
		out[name] = value
	return out


def build_schema(
	doctype: str, fields: list[Mapping[str, Any]], spec: FieldSpec, topic: str
) -> dict[str, Any]:
	"""A JSON Schema (2020-12) of the payload a route publishes; ``fields`` describe the DocType."""
	by_name = {f["fieldname"]: f for f in fields if f.get("fieldtype") not in _NO_VALUE}
	wanted = list(by_name) if spec.all else [n for n in spec.fields if n in by_name]
	properties: dict[str, Any] = {
		"name": {"type": "string"},
		"doctype": {"const": doctype},
		"modified": {"type": "string", "description": "Frappe datetime, site time"},
		"docstatus": {"type": "integer", "enum": [0, 1, 2]},
	}
	required = ["name", "doctype"]
	for name in wanted:
		f = by_name[name]
		if f["fieldtype"] in TABLES:
			chosen = None if spec.all else spec.tables.get(name)
			properties[name] = _table_schema(f, chosen)
		else:
			properties[name] = _field_schema(f)
		if f.get("reqd"):
			required.append(name)
	return {
		"$schema": DRAFT,
		"title": f"{doctype} on {topic}",
		"type": "object",
		"properties": properties,
		"required": sorted(set(required)),
	}


def version(schema: Mapping[str, Any]) -> str:
	"""A short fingerprint of the published shape: it changes when a field is added, removed, retyped
	or becomes required, and only then."""
	shape = json.dumps({"p": schema.get("properties"), "r": schema.get("required")}, sort_keys=True)
	return hashlib.sha256(shape.encode()).hexdigest()[:12]


def _field_schema(f: Mapping[str, Any]) -> dict[str, Any]:
	kind = f["fieldtype"]
	if kind in _INTEGER:
		out: dict[str, Any] = {"type": ["integer", "null"]}
	elif kind in _NUMBER:
		out = {"type": ["number", "null"]}
	elif kind == "Date":
		out = {"type": ["string", "null"], "format": "date"}
	elif kind == "Datetime":
		out = {
			"type": ["string", "null"],
			"description": "Frappe datetime: YYYY-MM-DD HH:MM:SS[.ffffff], site time",
		}
	elif kind == "JSON":
		out = {}
	else:
		out = {"type": ["string", "null"]}
	if kind in ("Link", "Dynamic Link") and f.get("options"):
		out["x-frappe-link"] = f[
			"options"
		]  # the name of a document of that DocType (or of the field it names)
	if kind == "Select" and f.get("options"):
		out["enum"] = [*[o for o in str(f["options"]).split("\n")], None]
	out["x-frappe-fieldtype"] = kind
	return out


def _table_schema(f: Mapping[str, Any], chosen: tuple[str, ...] | None) -> dict[str, Any]:
	child_fields = {c["fieldname"]: c for c in f.get("fields") or () if c.get("fieldtype") not in _NO_VALUE}
	names = list(child_fields) if chosen is None else [n for n in chosen if n in child_fields]
	properties = {
		"name": {"type": "string"},
		"idx": {"type": "integer"},
		"doctype": {"const": f.get("options")},
	}
	properties.update({n: _field_schema(child_fields[n]) for n in names})
	return {
		"type": "array",
		"x-frappe-child-doctype": f.get("options"),
		"items": {
			"type": "object",
			"properties": properties,
			"required": sorted({"name", *[n for n in names if child_fields[n].get("reqd")]}),
		},
	}


# Keywords whose outcome, for a value of a given JSON type, does not depend on the value itself
# (``format`` is an annotation: no format checker is used). Any other keyword makes ``fits`` compare values.
_TYPE_ONLY = {"type", "format", "title", "description", "$schema", "$id", "default", "examples", "$comment"}
_STRUCTURE = {"properties", "required", "additionalProperties", "patternProperties", "items"}
_fitted: dict[str, dict[Any, bool]] = {}
_TYPE_PLAN = ("type",)


def fits(payload: Any, schema_text: str) -> bool:
	"""Whether ``payload`` is valid against the JSON Schema ``schema_text`` — ``jsonschema``'s answer,
	remembered per *shape*: the keys, the JSON type of every value, and the value itself wherever a
	keyword depends on it (``enum``, ``const``). Two payloads of one shape get the same answer from
	jsonschema, so a stream of documents of one DocType is validated once per shape instead of once per
	message; a schema with any other keyword (``pattern``, bounds, ``$ref``...) validates every payload."""
	plan = _plan_of(schema_text)
	if plan is None:
		return validator(schema_text).is_valid(payload)
	shape = _shape(payload, plan)
	known = _fitted.setdefault(schema_text, {})
	if shape not in known:
		if len(known) > 4096:
			known.clear()
		known[shape] = validator(schema_text).is_valid(payload)
	return known[shape]


class _Unsupported(Exception):
	"""A schema ``fits`` does not take apart: validate every payload."""


# A plan says, per schema node, what of a value decides jsonschema's answer:
# ("any",) nothing; ("refused",) a key additionalProperties refuses; ("value",) the value itself;
# ("object", properties, patterns, extra) / ("array", items) the parts of a dict / list, else its type;
# ("type",) its JSON type.
@functools.lru_cache(maxsize=256)
def _plan_of(schema_text: str) -> tuple | None:
	try:
		return _plan(json.loads(schema_text))
	except _Unsupported:
		return None


def _plan(node: Any) -> tuple:
	if node is True or node == {}:
		return ("any",)
	if not isinstance(node, dict):
		raise _Unsupported
	others = {k for k in node if not k.startswith("x-")} - _TYPE_ONLY - _STRUCTURE
	if others:
		if not others <= {"enum", "const"}:
			raise _Unsupported
		return ("value",)
	if {"properties", "required", "additionalProperties", "patternProperties"} & node.keys():
		extra = node.get("additionalProperties", True)
		return (
			"object",
			{k: _plan(v) for k, v in (node.get("properties") or {}).items()},
			[(re.compile(k), _plan(v)) for k, v in (node.get("patternProperties") or {}).items()],
			("refused",) if extra is False else _plan(extra),
		)
	if "items" in node:
		return ("array", _plan(node["items"]))
	return _TYPE_PLAN


def _shape(value: Any, plan: tuple) -> Any:
	# Keys in the payload's own order: the same keys in another order make another entry with the
	# same answer. Leaves of type-only nodes (most of a payload's values) are done inline.
	kind = plan[0]
	if kind == "any" or kind == "refused":
		return kind
	if kind == "value":
		return _value_key(value)
	if kind == "object" and isinstance(value, dict):
		properties, patterns, extra = plan[1], plan[2], plan[3]
		shape = []
		for key, item in value.items():
			p = properties.get(key) or _by_pattern(key, patterns, extra)
			if p is not _TYPE_PLAN:
				shape.append((key, _shape(item, p)))
			elif item.__class__ is float:
				shape.append((key, ("float", item.is_integer())))  # JSON Schema's integer takes 1.0, not 1.5
			else:
				shape.append((key, item.__class__.__name__))
		return tuple(shape)
	if kind == "array" and isinstance(value, list):
		return tuple([_shape(item, plan[1]) for item in value])
	if value.__class__ is float:
		return ("float", value.is_integer())
	return value.__class__.__name__


def _value_key(value: Any) -> Any:
	"""A value whose every bit matters (``enum``, ``const``), as a memo key: its type and itself."""
	if value is None or value.__class__ in (str, int, float, bool):
		return (value.__class__.__name__, value)
	return json.dumps(value, sort_keys=True, default=str)


def _by_pattern(key: str, patterns: list, extra: tuple) -> tuple:
	for pattern, plan in patterns:
		if pattern.search(key):
			return plan
	return extra


def first_error(payload: Any, schema: Mapping[str, Any], path: str = "Payload") -> str | None:
	"""The first way ``payload`` breaks ``schema`` (any JSON Schema, checked by ``jsonschema``; the one
	validator of Spine's schema gate and of registry schemas), said for an operator, or None."""
	text = json.dumps(schema, sort_keys=True)
	if fits(payload, text):  # the usual case, without collecting errors
		return None
	error = jsonschema.exceptions.best_match(validator(text).iter_errors(payload))
	if error is None:
		return None
	where = path + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
	kind, wanted = error.validator, error.validator_value
	if kind == "required":
		missing = next(
			(n for n in wanted if isinstance(error.instance, dict) and n not in error.instance), "?"
		)
		return f"{where}.{missing} is required"
	if kind == "type":
		allowed = [wanted] if isinstance(wanted, str) else list(wanted)
		return f"{where} must be {' or '.join(allowed)} (got {type(error.instance).__name__})"
	if kind == "enum":
		return f"{where} must be one of {list(wanted)[:10]} (got {error.instance!r:.60})"
	if kind == "const":
		return f"{where} must be {wanted!r} (got {error.instance!r:.60})"
	return f"{where}: {error.message[:200]}"


@functools.lru_cache(maxsize=256)
def validator(schema_text: str) -> jsonschema.protocols.Validator:
	"""The ``jsonschema`` validator of a schema given as JSON text (made once per text, kept)."""
	schema = json.loads(schema_text)
	cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
	return cls(schema)
