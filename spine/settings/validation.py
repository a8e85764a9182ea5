"""Validation of Spine Producer/Consumer Config rows, shared by both controllers.

Each rule raises ``frappe.ValidationError`` with a message naming the row and what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable

import frappe
from frappe import _

from spine.config.topics import topic_name_problem
from spine.errors import HandlerConfigError
from spine.handlers import resolve, split_paths


def check_topic(row) -> None:
	problem = topic_name_problem(row.topic)
	if problem:
		frappe.throw(_("Row {0}: {1}").format(row.idx, problem), title=_("Invalid topic"))


def check_handlers(row, paths: Iterable[str]) -> None:
	installed = frappe.get_installed_apps()
	for path in paths:
		try:
			resolve(path, installed)
		except HandlerConfigError as e:
			frappe.throw(_("Row {0}: {1}").format(row.idx, str(e)), title=_("Invalid handler"))


def check_unique(rows, key_fields: tuple[str, ...], what: str) -> None:
	seen: dict[tuple, int] = {}
	for row in rows:
		key = tuple((row.get(f) or "").strip() for f in key_fields)
		if key in seen:
			frappe.throw(
				_("Row {0} repeats row {1} ({2}); merge them into one row").format(row.idx, seen[key], what),
				title=_("Duplicate row"),
			)
		seen[key] = row.idx


def handler_paths(value: str | None) -> list[str]:
	return split_paths(value)


def check_wire_format(row) -> None:
	"""A row publishing for the schema registry needs one named in the kafka block."""
	from spine.config.kafka import registry_settings
	from spine.errors import KafkaConfigError
	from spine.settings import broker
	from spine.settings.config_cache import REGISTRY_JSON

	if row.get("wire_format") != REGISTRY_JSON:
		return
	try:
		named = registry_settings(broker.site_settings().spine)
	except KafkaConfigError:
		named = None
	if not named:
		frappe.throw(
			_(
				'Row {0}: "Registry JSON Schema" needs a schema registry: add "spine.schema.registry.url" to the '
				"site's kafka block (site_config.json), or choose Spine JSON"
			).format(row.idx),
			title=_("No schema registry"),
		)
