"""Initial sync: a site with a new Spine Sync Rule asks the producing sites for what they already have.

The rule's button sends one request (``spine.request_all``) on the built-in topic
``spine.sync.initial``. Every site whose Spine Producer Config publishes the rule's source DocType
on the rule's topic answers: it queues a backfill of that route (a background job on the ``long``
queue, documents in name order, each one published as its state: draft, submitted, or submitted
then cancelled) and replies with how many documents it holds. A site that does not publish that
DocType there says nothing. The same backfill runs from the shell on the producing site with
``bench --site <site> spine-backfill <DocType> --topic <topic> --event "by docstatus"``.
"""

from __future__ import annotations

from typing import Any

import frappe

from spine import logs
from spine.config.topics import INITIAL_SYNC_TOPIC
from spine.errors import SkipMessage
from spine.producer.backfill import BY_DOCSTATUS
from spine.settings import config_cache

INITIAL_SYNC_DOCTYPE = "Spine Initial Sync"
WAIT_SECONDS = 5.0  # how long the button waits for the producing sites to answer

log = logs.logger(__name__)


def request(rule: dict[str, Any], timeout: float = WAIT_SECONDS) -> dict[str, Any]:
	"""Ask the producing sites to publish their documents of ``rule``'s source DocType on its topic.

	Returns ``{"replies": [{"site", "reply" or "error"}], "message": text for the person who asked}``;
	no replies within ``timeout`` seconds means no running site publishes that DocType there.
	"""
	from spine.rpc import client

	doctype, topic = rule["source_doctype"], rule["topic"]
	replies = client.request_all(
		INITIAL_SYNC_TOPIC, {"doctype": doctype, "topic": topic},
		doctype=INITIAL_SYNC_DOCTYPE, timeout=timeout,
	)  # fmt: skip
	lines = []
	for answer in replies:
		if "error" in answer:
			lines.append(f"{answer['site']}: could not start ({answer['error'].get('message')})")
		else:
			count = answer["reply"].get("documents", 0)
			lines.append(f"{answer['site']}: publishing {count:,} {doctype} documents now")
	if not lines:
		lines.append(
			f"No site answered within {timeout:g} s. A site answers when its Spine Producer Config "
			f"publishes {doctype} on {topic} and its Spine processes run; or run on the producing site: "
			f'bench --site <site> spine-backfill "{doctype}" --topic {topic} --event "{BY_DOCSTATUS}"'
		)
	return {"replies": replies, "message": "\n".join(lines)}


def answer(message: dict[str, Any]) -> dict[str, Any]:
	"""The built-in responder on every producing site: queue the backfill, reply with the count.

	Raises ``SkipMessage`` (no reply; the asking site hears from the sites that do publish) when this
	site does not publish the DocType on that topic.
	"""
	payload = message.get("Payload") or {}
	doctype, topic = payload.get("doctype"), payload.get("topic")
	asked_by = (message.get("Header") or {}).get("OriginSite") or "another site"
	routes = [r for r in config_cache.producer_routes().get(doctype or "", []) if r["topic"] == topic]
	if not routes:
		raise SkipMessage(f"{asked_by} asked for {doctype} on {topic}; this site does not publish it there")
	count = frappe.db.count(doctype)
	frappe.enqueue(
		"spine.producer.backfill.backfill", queue="long", timeout=6 * 3600, enqueue_after_commit=True,
		doctype=doctype, topic=topic, event=BY_DOCSTATUS,
	)  # fmt: skip
	log.info(
		"initial sync: %s asked for %s on %s; a backfill of %d documents is queued on the long queue",
		asked_by, doctype, topic, count,
	)  # fmt: skip
	return {"doctype": doctype, "topic": topic, "documents": count}
