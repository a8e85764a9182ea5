"""Which handler a stored message goes to, and whether it may go there: routes and their gates.

A row's route comes from its topic, DocType and origin: Spine's own topics (schemas, replies, keys,
initial-sync requests) have built-in routes; other messages go to their Spine Consumer Config row's
handlers and/or Spine Sync Rule, and a message with neither is Skipped with the reason. A route's
gates may stop a message before it runs: the trust gate (*Require signature*, *Accept from*, a
signature that does not verify) and the schema gate (*Accepted schema versions*, *Validate payloads*).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import frappe

from spine import message_log
from spine.config.topics import INITIAL_SYNC_TOPIC, KEY_DOCTYPE, KEYS_TOPIC, reply_topic
from spine.consumer import payload_schema
from spine.errors import HandlerConfigError
from spine.handlers import resolve
from spine.message_log import Outcome
from spine.rpc import REPLY_DOCTYPE, replies
from spine.schema import SCHEMA_DOCTYPE, SCHEMA_TOPIC
from spine.settings import trusted_keys
from spine.sync import initial as initial_sync
from spine.sync import rules as sync_rules
from spine.sync.initial import INITIAL_SYNC_DOCTYPE

KEYS_ROUTE = ["spine.settings.trusted_keys.receive"]
REPLIES_ROUTE = ["spine.rpc.replies.handle"]

# Handler paths seen calling frappe.db.commit()/rollback(); their messages get a transaction each.
SELF_COMMITTING: set[str] = set()


@dataclass
class Route:
	"""What runs for a message: handler callables (one list per message, or one list per batch)."""

	paths: list[str]
	handlers: list[Callable[..., Any]]
	batch: bool = False
	config: dict[str, Any] | None = None  # the Spine Consumer Config row, as cached
	sync_rule: dict[str, Any] | None = None  # a Spine Sync Rule, applied before the handlers
	after: Callable[[], None] | None = None  # called once a message of the route was handled

	@property
	def self_committing(self) -> bool:
		return any(p in SELF_COMMITTING for p in self.paths)


class Router:
	"""Routes and gates for the rows of one batch (routes are looked up once per batch)."""

	def __init__(self, settings: dict[str, Any]):
		self.settings = settings
		self._routes: dict[tuple, Route | Outcome] = {}
		self._keyring: trusted_keys.KeyRing | None = None  # other sites' keys, read once per batch

	def route(self, row) -> Route | Outcome:
		"""The route of a locked row, or the outcome (Skipped, with the reason) when it has none."""
		key = (row.topic, row.document_type, row.origin_site)
		if key not in self._routes:
			self._routes[key] = self._find(row)
		return self._routes[key]

	def key_received(self) -> None:
		"""A key just arrived: it counts for the next message of the batch."""
		self._keyring = None

	def _find(self, row) -> Route | Outcome:
		if row.topic == SCHEMA_TOPIC and row.document_type == SCHEMA_DOCTYPE:
			return Route(["spine.consumer.payload_schema.receive"], [payload_schema.receive])
		if row.document_type == REPLY_DOCTYPE and row.topic == reply_topic(frappe.local.site):
			return Route(REPLIES_ROUTE, [replies.handle])
		own_site = row.origin_site in {frappe.local.site, _own_client_id()}
		if own_site and not self.settings.get("test_mode"):
			return message_log.skipped(
				f"published by this site ({row.origin_site}); turn on 'Handle messages from this site too' "
				"to handle it"
			)
		if row.topic == INITIAL_SYNC_TOPIC and row.document_type == INITIAL_SYNC_DOCTYPE:
			return Route(["spine.sync.initial.answer"], [initial_sync.answer])
		if row.topic == KEYS_TOPIC and row.document_type == KEY_DOCTYPE:
			# a key just received counts for the next message of the batch
			return Route(KEYS_ROUTE, [trusted_keys.receive], after=self.key_received)
		config = self.settings["routes"].get(row.topic, {}).get(row.document_type)
		rule = sync_rules.for_message(self.settings, row.topic, row.document_type)
		if not config and rule:
			return Route([], [], sync_rule=rule)
		if not config:
			unknown = (
				""
				if frappe.db.exists("DocType", row.document_type)
				else f" ({row.document_type} is not a DocType on this site)"
			)
			return message_log.skipped(
				f"no handler configured for topic {row.topic} and DocType {row.document_type}{unknown}"
			)
		installed = frappe.get_installed_apps()
		handlers = []
		for path in config["handlers"]:
			try:
				handlers.append(resolve(path, installed))
			except HandlerConfigError as e:
				handlers.append(_broken_handler(e))
		# a sync rule applies message by message: with one, the row's handlers get messages one by one too
		batch = bool(config.get("batch")) and not rule
		return Route(config["handlers"], handlers, batch, config, sync_rule=rule)

	def trust_gate(self, row, route: Route) -> Outcome | None:
		"""The outcome when the message's signature, or its lack, keeps ``route`` from handling it: the
		route's *Require signature* and *Accept from*; a signature that does not verify, or a revoked
		or another site's key, everywhere; a rotated key not here yet: tried again later."""
		rules = []
		if route.config:
			rules.append(
				(route.config, f"the Spine Consumer Config row for {row.topic} / {row.document_type}")
			)
		if route.sync_rule:
			rules.append((route.sync_rule, f"Spine Sync Rule {route.sync_rule.get('name')}"))
		if route.paths == REPLIES_ROUTE and frappe.get_cached_doc("Spine Settings").get(
			"require_signed_replies"
		):
			rules.append(({"require_signature": True}, "this site (Spine Settings: replies must be signed)"))
		required = [(bool(r.get("require_signature")), r.get("accept_from") or [], what) for r, what in rules]
		if not any(need or accept for need, accept, _ in required) and '"Signature"' not in row.message:
			return None  # unsigned, and nothing asks for a signature: as before signing existed
		if self._keyring is None:
			self._keyring = trusted_keys.keyring()
		verdict = self._keyring.judge(json.loads(row.message))
		for need, accept, what in required or [(False, [], "this site")]:
			if refused := trusted_keys.admit(verdict, need, accept, what):
				return refused
		return None

	@staticmethod
	def schema_gate(row, route: Route) -> Outcome | None:
		"""The outcome when the row's *Accepted schema versions* or *Validate payloads* stop the message
		(tried again later while its schema has not arrived)."""
		if not route.config or not (
			route.config.get("accepted_schemas") or route.config.get("validate_payload")
		):
			return None
		return payload_schema.gate(json.loads(row.message), row.topic, route.config)


def _broken_handler(error: HandlerConfigError) -> Callable[[Any], None]:
	def raise_config_error(_body: Any) -> None:
		raise error

	return raise_config_error


def _own_client_id() -> str | None:
	kafka = frappe.conf.get("kafka")
	return kafka.get("client.id") if isinstance(kafka, dict) else None
