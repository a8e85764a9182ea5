"""Spine Producer/Consumer Config and Spine Sync Rules as the runtime sees them: small dicts, built
from the database and kept per process, each stamped with the *version* of the rows it came from.

A reader first reads the version in its own transaction (``_PRODUCER_VERSION_SQL``: the singles'
``modified`` and the sync rules' count and latest ``modified``, one indexed query) and takes a kept
copy only if it carries that version; otherwise it builds one from the same transaction and keeps
that. So a transaction always works with the config its own snapshot holds: a save is in force for
every transaction that starts after its commit, in every process, whatever the process was doing
when it was saved, and no copy built from an older snapshot (a process whose transaction began
before the commit, Frappe v14 running "after commit" callbacks just before COMMIT) is ever used by a
newer one. Nothing has to be cleared on save, and nothing is kept in Redis.

``producer_routes()`` is asked on every save of every DocType, so it is memoised for the rest of the
transaction (``frappe.local``, dropped at commit and rollback): a transaction's events are routed by
the config it saw at its first save.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import frappe

from spine import compat
from spine.config.topics import INITIAL_SYNC_TOPIC, KEYS_TOPIC, reply_topic
from spine.handlers import split_paths
from spine.schema import SCHEMA_TOPIC, parse_field_spec
from spine.settings import trusted_keys

# Where the first releases cached the configs in Redis; deleted on migrate and uninstall.
LEGACY_REDIS_KEYS = ("spine:producer_routes", "spine:consumer_routes")
_LOCAL_PRODUCER_ROUTES = "spine_producer_routes"  # this transaction's copy

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
REGISTRY_JSON = "Registry JSON Schema"  # a producer row's wire format: framed for the schema registry

# A save of a single always moves its ``modified`` (its child rows are saved with it); a rule's
# insert or save moves the latest ``modified``, a deletion the count.
_SINGLE_MODIFIED = "(SELECT value FROM `tabSingles` WHERE doctype = '{}' AND field = 'modified')"
_PRODUCER_VERSION = _SINGLE_MODIFIED.format("Spine Producer Config")
_PRODUCER_VERSION_SQL = f"SELECT {_PRODUCER_VERSION}"
_CONSUMER_VERSION_SQL = f"SELECT {_PRODUCER_VERSION}, {_SINGLE_MODIFIED.format('Spine Consumer Config')}"
_RULES_VERSION = "(SELECT CONCAT(COUNT(*), '/', IFNULL(MAX(modified), '')) FROM `tabSpine Sync Rule`)"

# per (site, kind): (version, config) — the last one built or used by this process
_kept: dict[tuple[str, str], tuple[Any, Any]] = {}


def producer_routes() -> dict[str, list[dict[str, Any]]]:
	"""``{doctype: [{"topic", "handler", "events", ...}]}`` for enabled rows, as this transaction sees
	Spine Producer Config; empty when publishing is off. Read once per transaction."""
	routes = getattr(frappe.local, _LOCAL_PRODUCER_ROUTES, None)
	if routes is None:
		routes = _versioned("producer", _PRODUCER_VERSION_SQL, _build_producer_routes)
		setattr(frappe.local, _LOCAL_PRODUCER_ROUTES, routes)
		compat.after_commit(forget_local)
		compat.after_rollback(forget_local)
	return routes


def consumer_settings() -> dict[str, Any]:
	"""``{"routes": {topic: {doctype: {"handlers": [paths], "batch": bool, ...}}}, "sync_rules",
	"topics": [...], retry settings, "test_mode"}`` as this transaction sees the config."""
	return _versioned("consumer", _consumer_version_sql(), _build_consumer_settings)


def forget() -> None:
	"""Drop this process's copies of the configs (the next read builds them again)."""
	site = getattr(frappe.local, "site", None)
	for key in [k for k in _kept if k[0] == site]:
		_kept.pop(key, None)
	forget_local()


def forget_local() -> None:
	"""Drop this transaction's memo of the producer routes, so the next read checks the version again.

	Long-running processes call it at the start of each cycle; commits and rollbacks call it too."""
	setattr(frappe.local, _LOCAL_PRODUCER_ROUTES, None)


def _versioned(kind: str, version_sql: str, build: Callable[[], Any]) -> Any:
	"""The config ``build`` makes, for the version this transaction sees: the kept copy if it has that
	version, else a new one (kept for the next reader of the same version)."""
	version = tuple(frappe.db.sql(version_sql)[0])
	key = (frappe.local.site, kind)
	kept = _kept.get(key)
	if kept is not None and kept[0] == version:
		return kept[1]
	config = build()
	_kept[key] = (version, config)
	return config


_rules_table: set[str] = set()  # sites whose Spine Sync Rule table was seen (it does not go away)


def _consumer_version_sql() -> str:
	site = frappe.local.site
	if site not in _rules_table:
		if not frappe.db.table_exists("Spine Sync Rule"):
			return _CONSUMER_VERSION_SQL  # before the first migrate of this version
		_rules_table.add(site)
	return f"{_CONSUMER_VERSION_SQL}, {_RULES_VERSION}"


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
				"registry": row.get("wire_format") == REGISTRY_JSON,
				"compatibility": row.get("compatibility") or "BACKWARD",
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
