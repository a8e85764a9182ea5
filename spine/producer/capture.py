"""Capture configured document events into the outbox (Outbound Message Log rows).

Runs inside the document's own transaction: the row commits with the document or not at
all, so a rolled-back save publishes nothing and a committed one is never lost. After the
commit, one kick per transaction asks the relay to publish (``relay.kick``).
"""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo

import frappe
from frappe.utils import get_system_timezone, now_datetime

from spine import compat, envelope, logs, message_log, spans, trace
from spine.errors import HandlerConfigError
from spine.handlers import resolve
from spine.producer import shape
from spine.registry import framing
from spine.settings import config_cache

log = logs.logger(__name__)

# Saving these must never produce events: Spine's own rows and settings.
_NEVER_CAPTURED = frozenset(
	{
		"Message Log",
		"Spine Producer Config",
		"Spine Producer Handler Mapping",
		"Spine Consumer Config",
		"Spine Consumer Handler Mapping",
		"Spine Payload Schema",
	}
)
_KICK_FLAG = "spine_relay_kick_registered"


def on_event(doc, method: str, *args: Any) -> None:
	"""``doc_events["*"]`` entry: cheap for unconfigured DocTypes (one dict lookup)."""
	if doc.doctype in _NEVER_CAPTURED:
		return
	try:
		routes = config_cache.producer_routes().get(doc.doctype)
	except Exception:
		if frappe.flags.in_install or frappe.flags.in_uninstall:
			return  # Spine's own tables are being made or dropped
		# A broken install (tables or config missing) must not stop every save on the site, and
		# the event must not vanish either: it is logged against the document, loudly.
		_log_unreadable_config(doc, method)
		return
	if not routes or frappe.flags.in_install or frappe.flags.in_uninstall:
		return  # app installs and uninstalls are not business events
	if doc.flags.spine_synced or (doc.doctype, doc.name) in (frappe.flags.spine_synced_docs or ()):
		return  # applied here by a sync rule from another site: not published back (no ping-pong)
	for route in routes:
		if shape.wanted(doc, method, route):
			capture(doc, method, route, args)


def capture(doc, event: str, route: dict[str, Any], args: tuple = ()) -> str | None:
	"""Write one Outbound row for ``doc``'s ``event`` on ``route``; returns its message id, or None if dropped.

	The producer handler (if any) decides what is published: it returns the document to
	publish (changed or not) or None to drop the event. A handler that raises, cannot be
	imported, or returns something else is logged against the document and the original
	document is published. Then the route's field choice applies, and the payload's schema
	version goes into the envelope (the schema itself ahead of it, the first time).
	"""
	payload = _run_handler(doc, event, route.get("handler"))
	if payload is None:
		return None
	if event == "after_rename" and len(args) >= 2:
		payload["rename_meta"] = {
			"old_name": args[0],
			"new_name": args[1],
			"merge": bool(args[2]) if len(args) > 2 else False,
		}
	payload = shape.payload(payload, doc.doctype, route)
	schema_doc, version = shape.route_schema(doc.doctype, route)
	announce = shape.schema_to_publish(doc.doctype, route, version, schema_doc)
	if announce:  # a new shape: its schema goes out first, on the compacted schema topic
		capture_raw(
			shape.SCHEMA_DOCTYPE, f"{route['topic']}:{doc.doctype}", "on_update", shape.SCHEMA_TOPIC, announce
		)
	# the relay frames the payload for the schema registry (spine.producer.registry_records)
	wire = {"WireFormat": framing.WIRE_FORMAT} if route.get("registry") else None
	return capture_raw(doc.doctype, str(doc.name), event, route["topic"], payload, payload_schema=version,
		extra_header=wire)  # fmt: skip


def capture_raw(
	doctype: str,
	docname: str,
	event: str,
	topic: str,
	payload: dict[str, Any],
	payload_schema: str | None = None,
	extra_header: dict[str, Any] | None = None,
	signer: Any = None,
) -> str:
	"""Write one Outbound row with ``payload`` as it is, in the current transaction; returns its message
	id. Signed with this site's key (or ``signer``'s) when signing is on."""
	parent = current_traceparent()
	now = _site_now()
	with spans.span(
		"spine capture", parent, topic=topic, doctype=doctype, docname=docname, event=event
	) as own:
		env = envelope.build(
			doctype=doctype,
			docname=docname,
			event=event,
			topic=topic,
			payload=payload,
			origin=origin(),
			origin_site=frappe.local.site,
			timestamp=now,
			payload_schema=payload_schema,
			extra_header={**(extra_header or {}), "TraceParent": own or trace.child(parent)},
		)
		try:
			# the row is stamped with the envelope's moment, without its offset as Frappe stores times
			message_log.insert_outbound(row_values(env, signer, now.replace(tzinfo=None)))
		except Exception as e:
			if frappe.db.is_table_missing(e):
				frappe.throw(
					f"Spine cannot store the {event} event of {doctype} {docname}: its Message Log table "
					f"is missing. The save was stopped so the event is not lost; run "
					f"`bench --site {frappe.local.site} migrate` to repair Spine.",
					title="Spine is not installed completely",
				)
			raise
	_register_kick()
	return env.message_id


def row_values(
	env: envelope.Envelope, signer: Any = None, now: datetime.datetime | None = None
) -> dict[str, Any]:
	"""The values of ``message_log.insert_outbound`` for ``env``, sent from this site by the current user, signed
	with ``signer`` or this site's key (if signing is on), created ``now`` (site time, naive; default
	the current time)."""
	from spine.producer import own_key

	if signer is not None:
		signer.sign_body(env.body)
	else:
		own_key.sign_body(env.body)
	return {
		"now": now or now_datetime(),
		"user": frappe.session.user if getattr(frappe.local, "session", None) else "Administrator",
		"message_id": env.message_id,
		"doctype": env.doctype,
		"docname": env.docname,
		"event": env.event,
		"topic": env.topic,
		"key": env.key,
		"origin_site": frappe.local.site,
		"message": envelope.encode(env).decode(),
		"correlation_id": env.body["Header"].get("CorrelationId"),
		"trace_parent": env.body["Header"].get("TraceParent"),
	}


def current_traceparent() -> str | None:
	"""The trace what is saved now belongs to: the message whose handler runs (set by the
	processor), else the web request's ``traceparent`` header, else none (a new trace)."""
	handling = frappe.flags.get("spine_traceparent")
	if handling:
		return handling
	request = getattr(frappe.local, "request", None)
	headers = getattr(request, "headers", None)
	return headers.get("traceparent") if headers is not None else None


def _run_handler(doc, event: str, handler_path: str | None) -> dict[str, Any] | None:
	if not handler_path:
		return doc.as_dict()
	try:
		handler = resolve(handler_path, frappe.get_installed_apps())
		result = handler(doc, event)
	except Exception as e:
		_log_handler_problem(doc, event, handler_path, e if isinstance(e, HandlerConfigError) else None)
		return doc.as_dict()
	if result is None:
		return None
	if isinstance(result, dict):
		return dict(result)
	if hasattr(result, "as_dict"):
		return result.as_dict()
	_log_handler_problem(
		doc,
		event,
		handler_path,
		TypeError(f"returned {type(result).__name__}; expected the document, a dict or None"),
	)
	return doc.as_dict()


def _log_handler_problem(doc, event: str, handler_path: str, problem: Exception | None) -> None:
	"""Log against the document; the traceback is kept when the handler itself raised."""
	title = f"Spine producer handler {handler_path} failed for {doc.doctype} {doc.name} ({event})"
	message = (
		f"{problem}\n\nThe original document was published instead."
		if problem
		else frappe.get_traceback() + "\nThe original document was published instead."
	)
	frappe.log_error(
		title=title[:140], message=message, reference_doctype=doc.doctype, reference_name=doc.name
	)


def _log_unreadable_config(doc, event: str) -> None:
	if frappe.flags.spine_logging_capture_problem:
		return  # the Error Log insert passes through this hook too
	frappe.flags.spine_logging_capture_problem = True
	try:
		message = (
			f"{frappe.get_traceback()}\nSpine could not read Spine Producer Config, so the {event} event of "
			f"{doc.doctype} {doc.name} was NOT captured for publishing. Spine's tables or DocTypes are "
			f"probably missing after a failed install: run `bench --site {frappe.local.site} migrate` "
			"(or `install-app spine --force`), then publish the missed documents with `spine-backfill`."
		)
		log.error(
			"capture skipped for %s %s (%s): Spine's configuration cannot be read",
			doc.doctype,
			doc.name,
			event,
		)
		frappe.log_error(
			title=f"Spine did not capture {doc.doctype} {doc.name} ({event})"[:140],
			message=message,
			reference_doctype=doc.doctype,
			reference_name=doc.name,
		)
	except Exception:
		log.exception("Spine could not even record that %s %s was not captured", doc.doctype, doc.name)
	finally:
		frappe.flags.spine_logging_capture_problem = False


def _site_now() -> datetime.datetime:
	"""Now in the site's time zone (System Settings), with its offset."""
	return datetime.datetime.now(ZoneInfo(get_system_timezone()))


def origin() -> str:
	"""This site as the envelope names it (Header.Origin): the kafka block's client.id, else the site."""
	kafka = frappe.conf.get("kafka") or {}
	return str(kafka.get("client.id") or frappe.local.site) if isinstance(kafka, dict) else frappe.local.site


def _register_kick() -> None:
	"""Kick the relay once after this transaction commits; a rollback drops the kick with the rows."""
	if frappe.flags.get(_KICK_FLAG):
		return
	frappe.flags[_KICK_FLAG] = True
	from spine.producer import relay

	compat.after_commit(relay.kick)
	compat.after_rollback(_clear_kick_flag)


def _clear_kick_flag() -> None:
	frappe.flags[_KICK_FLAG] = False
