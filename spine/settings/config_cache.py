"""Spine Producer/Consumer Config as the runtime sees them: small dicts cached in Redis.

Saving either single clears its key (the controllers' ``clear_cache``), so the next event or
message uses the new values without a restart. Long-running processes call
``forget_local()`` each cycle, because Frappe memoises Redis reads in ``frappe.local.cache``
for the life of the process. With Redis down, reads fall back to the database.
"""

from __future__ import annotations

from typing import Any

import frappe

from spine import compat
from spine.config.topics import INITIAL_SYNC_TOPIC, KEYS_TOPIC, reply_topic
from spine.handlers import split_paths
from spine.schema import SCHEMA_TOPIC, parse_field_spec
from spine.settings import trusted_keys

PRODUCER_ROUTES_KEY = "spine:producer_routes"
_LOCAL_PRODUCER_ROUTES = "spine_producer_routes"  # this request's or job's copy
CONSUMER_ROUTES_KEY = "spine:consumer_routes"

# Config checkbox -> Frappe doc events it captures ("update" includes updates after submit).
EVENT_FIELDS = {
	"on_insert": ("after_insert",),
	"on_update": ("on_update", "on_update_after_submit"),
	"on_submit": ("on_submit",),
	"on_cancel": ("on_cancel",),
	"on_trash": ("on_trash",),
	"after_rename": ("after_rename",),
}
BECOMES_TRUE = "When the condition becomes true"


def producer_routes() -> dict[str, list[dict[str, Any]]]:
	"""``{doctype: [{"topic", "handler", "events"}]}`` for enabled rows; empty when publishing is off.

	Read once per request or job (kept on ``frappe.local``, as Frappe keeps its own Redis reads): the
	capture hook asks on every save of every DocType, and Frappe's cache lookup alone costs ~10 µs.
	"""
	routes = getattr(frappe.local, _LOCAL_PRODUCER_ROUTES, None)
	if routes is None:
		routes = compat.cache().get_value(PRODUCER_ROUTES_KEY, generator=_build_producer_routes)
		setattr(frappe.local, _LOCAL_PRODUCER_ROUTES, routes)
	return routes


def consumer_settings() -> dict[str, Any]:
	"""``{"routes": {topic: {doctype: {"handlers": [paths], "batch": bool}}}, "topics": [...], retry
	settings, "test_mode"}``."""
	return compat.cache().get_value(CONSUMER_ROUTES_KEY, generator=_build_consumer_settings)


def forget() -> None:
	"""Drop both cached configs, in Redis and in this process."""
	compat.cache().delete_value([PRODUCER_ROUTES_KEY, CONSUMER_ROUTES_KEY])
	setattr(frappe.local, _LOCAL_PRODUCER_ROUTES, None)


def forget_after_commit(*keys: str) -> None:
	"""Drop ``keys`` (in Redis and this process's memo) now, and again when the saving transaction
	commits or rolls back.

	The second drop matters: until the commit, another process can read the old committed config
	and cache it again, and a read in this transaction (a Version row's capture hook, the consumer
	settings) caches the new, uncommitted config, which a rollback makes wrong.
	"""
	_forget(keys)
	compat.after_commit(lambda: _forget(keys))
	compat.after_rollback(lambda: _forget(keys))


def _forget(keys: tuple[str, ...]) -> None:
	compat.cache().delete_value(list(keys))
	setattr(frappe.local, _LOCAL_PRODUCER_ROUTES, None)


def forget_local() -> None:
	"""Drop this process's memo of the cached configs, so the next read asks Redis again."""
	setattr(frappe.local, _LOCAL_PRODUCER_ROUTES, None)
	local_cache = getattr(frappe.local, "cache", None)
	if local_cache is not None:
		for key in (PRODUCER_ROUTES_KEY, CONSUMER_ROUTES_KEY):
			local_cache.pop(compat.cache().make_key(key), None)


def _build_producer_routes() -> dict[str, list[dict[str, Any]]]:
	config = frappe.get_single("Spine Producer Config")
	routes: dict[str, list[dict[str, Any]]] = {}
	if not config.enabled:
		return routes
	for row in config.configs:
		if not row.enabled or not row.document_type or not row.topic:
			continue
		events = [event for field, names in EVENT_FIELDS.items() if row.get(field) for event in names]
		becomes_true = (
			bool((row.get("condition") or "").strip()) and row.get("condition_mode") == BECOMES_TRUE
		)
		if not events and not becomes_true:
			continue
		routes.setdefault(row.document_type, []).append(
			{
				"id": row.name,
				"topic": row.topic.strip(),
				"handler": (row.event_handler or "").strip() or None,
				"events": events,
				"condition": (row.get("condition") or "").strip() or None,
				"becomes_true": becomes_true,
				"fields": parse_field_spec(row.get("published_fields")).to_dict(),
			}
		)
	return routes


def _topics(routes: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
	"""The configured topics, and spine.schemas when a row checks payloads against their schemas."""
	wanted = set(routes)
	if any(c.get("validate_payload") for by_doctype in routes.values() for c in by_doctype.values()):
		wanted.add(SCHEMA_TOPIC)
	return sorted(wanted)


def _sync_rules() -> dict[str, dict[str, dict[str, Any]]]:
	"""Enabled Spine Sync Rules as ``{topic: {source DocType: rule}}``, field map rows included."""
	if not frappe.db.table_exists("Spine Sync Rule"):  # before the first migrate of this version
		return {}
	rules = frappe.get_all("Spine Sync Rule", filters={"enabled": 1}, fields=["*"], order_by="creation")
	fields = frappe.get_all(
		"Spine Sync Field", filters={"parent": ("in", [r.name for r in rules]) if rules else ("=", "")},
		fields=["parent", "source_field", "local_field", "skip", "constant"], order_by="idx",
	)  # fmt: skip
	by_topic: dict[str, dict[str, dict[str, Any]]] = {}
	for rule in rules:
		row = {k: rule.get(k) for k in (
			"name", "topic", "source_doctype", "local_doctype", "find_by", "match_fields", "create_missing",
			"follow_submit", "on_delete", "skip_older", "mapping", "ignore_links", "clear_links",
		)}  # fmt: skip
		row["require_signature"] = bool(rule.get("require_signature"))
		row["accept_from"] = trusted_keys.accept_list(rule.get("accept_from"))
		row["local_doctype"] = row["local_doctype"] or row["source_doctype"]
		row["field_map"] = [dict(f) for f in fields if f.parent == rule.name]
		by_topic.setdefault(rule.topic.strip(), {}).setdefault(rule.source_doctype.strip(), row)
	return by_topic


def _build_consumer_settings() -> dict[str, Any]:
	config = frappe.get_single("Spine Consumer Config")
	routes: dict[str, dict[str, dict[str, Any]]] = {}
	for row in config.configs:
		if not row.enabled or not row.topic or not row.document_type:
			continue
		routes.setdefault(row.topic.strip(), {})[row.document_type.strip()] = {
			"handlers": list(dict.fromkeys(split_paths(row.event_handler))),  # each once, in order
			"batch": bool(row.get("batch_handler")),
			"accepted_schemas": [v.strip() for v in (row.get("accepted_schemas") or "").replace("\n", ",").split(",")
				if v.strip()],
			"validate_payload": bool(row.get("validate_payload")),
			"require_signature": bool(row.get("require_signature")),
			"accept_from": trusted_keys.accept_list(row.get("accept_from")),
		}  # fmt: skip
	sync_rules = _sync_rules()
	# the master switch stops reading; a reading site always reads the replies to its own requests
	topics = {*_topics(routes), *sync_rules, reply_topic(frappe.local.site)} if config.enabled else set()
	if producer_routes():  # a publishing site answers other sites' requests for an initial sync
		topics.update((INITIAL_SYNC_TOPIC, reply_topic(frappe.local.site)))
	if topics:  # other sites' signing keys, to check what they send
		topics.add(KEYS_TOPIC)
	return {
		"routes": routes,
		"sync_rules": sync_rules,
		"topics": sorted(topics),
		"max_attempts": config.max_attempts or 5,
		"retry_backoff_seconds": config.retry_backoff_seconds
		if config.retry_backoff_seconds is not None
		else 30,
		"retry_backoff_max_seconds": config.retry_backoff_max_seconds or 3600,
		"test_mode": bool(config.test_mode),
	}
