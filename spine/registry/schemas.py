"""The JSON Schema Spine registers for a payload: Spine's own (``spine.schema.build_schema``) as the
registry's compatibility rules need it. Plain Python.

- draft-07 (``$schema``): what registries' JSON Schema compatibility checkers read (Apicurio 3.3 answers
  "could not determine version" to 2020-12);
- a *closed* content model (``additionalProperties: false``, Frappe's own bookkeeping fields declared,
  ``_``-prefixed ones allowed): under an open one a registry counts every added property as a
  narrowing, so adding an optional field to a DocType would be refused as incompatible; closed, adding
  an optional field is compatible and making one required, or retyping it, is not.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

DRAFT_07 = "http://json-schema.org/draft-07/schema#"
_TEXT = {"type": ["string", "null"]}
_DOCUMENT_FIELDS = {
	"name": {"type": "string"}, "owner": _TEXT, "creation": _TEXT, "modified": _TEXT, "modified_by": _TEXT,
	"docstatus": {"type": "integer"}, "idx": {"type": ["integer", "null"]}, "doctype": {"type": "string"},
	"rename_meta": {"type": "object"},
}  # fmt: skip
_ROW_FIELDS = {**_DOCUMENT_FIELDS, "parent": _TEXT, "parentfield": _TEXT, "parenttype": _TEXT}


def for_registry(schema: Mapping[str, Any]) -> dict[str, Any]:
	"""``schema`` (a payload schema Spine built) as Spine registers it."""
	out = _closed(copy.deepcopy(dict(schema)), _DOCUMENT_FIELDS)
	out["$schema"] = DRAFT_07
	return out


def _closed(node: dict[str, Any], standard: Mapping[str, Any]) -> dict[str, Any]:
	properties = node.setdefault("properties", {})
	for name, spec in standard.items():
		properties.setdefault(name, dict(spec))
	for spec in properties.values():
		items = spec.get("items") if isinstance(spec, dict) else None
		if spec.get("type") == "array" and isinstance(items, dict) and "properties" in items:
			_closed(items, _ROW_FIELDS)
	node["additionalProperties"] = False
	node["patternProperties"] = {"^_": {}}
	return node
