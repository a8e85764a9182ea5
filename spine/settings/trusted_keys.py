"""Other sites' signing keys (Spine Trusted Site) and what a received message's signature proves.

``KeyRing`` reads the rows once (a processing batch's view, so a revocation counts from the next
batch on) and judges a message; ``admit`` applies a row's *Require signature* and *Accept from* to
that judgement; ``receive`` is the built-in handler of ``spine.keys``, where sites publish their
public keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import frappe
from frappe.utils import now_datetime

from spine import logs, message_log, signing
from spine.errors import SpineError
from spine.message_log import Outcome

log = logs.logger(__name__)
DOCTYPE = "Spine Trusted Site"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Key:
	site: str
	key_id: str
	status: str
	fingerprint: str
	public_key: bytes | None


@dataclass(frozen=True)
class Verdict:
	"""What a message's signature proves. ``kind``: ``unsigned``, ``unknown`` / ``pending`` (signed by
	a key not trusted yet), ``awaited`` (an unknown key of a site with a trusted key: most likely its
	rotated key, still on its way), ``ok`` (``site`` is the proven origin), or a refusal that nothing
	overrides: ``bad`` (does not verify), ``revoked``, ``forged`` (signed by another site's key)."""

	kind: str
	reason: str = ""
	site: str | None = None


_rings: dict[str, tuple[tuple, KeyRing]] = {}  # per site: (the table's fingerprint, its keys)


def keyring() -> KeyRing:
	"""This site's Spine Trusted Site rows as they are now. Read and parsed again only when a row was
	added, changed or removed (its count or latest ``modified`` moved): one aggregate query instead of
	reading and parsing every key, which cost 1.7 ms per processing batch."""
	fingerprint = tuple(frappe.db.sql(f"SELECT COUNT(*), MAX(modified) FROM `tab{DOCTYPE}`")[0])
	cached = _rings.get(frappe.local.site)
	if cached is not None and cached[0] == fingerprint:
		return cached[1]
	ring = KeyRing()
	_rings[frappe.local.site] = (fingerprint, ring)
	return ring


class KeyRing:
	"""This site's Spine Trusted Site rows as they were read (``keyring()`` gives the current one)."""

	def __init__(self) -> None:
		self.by_id: dict[str, Key] = {}
		for row in frappe.get_all(
			DOCTYPE, fields=["site", "key_id", "status", "fingerprint", "public_key"], order_by="creation"
		):
			if row.key_id and row.public_key:
				self.by_id[row.key_id] = Key(
					row.site,
					row.key_id,
					row.status,
					row.fingerprint,
					signing.public_key_bytes(row.public_key),
				)

	def judge(self, body: dict[str, Any]) -> Verdict:
		header = body.get("Header") or {}
		origin, key_id = header.get("OriginSite") or header.get("Origin"), header.get("KeyId")
		if not header.get("Signature"):
			return Verdict("unsigned", f"unsigned (it says it comes from {origin})")
		key = self.by_id.get(key_id)
		if key is None and any(k.site == origin and k.status == "Trusted" for k in self.by_id.values()):
			return Verdict(
				"awaited",
				f"signed by key {key_id} of {origin}, which has not arrived on spine.keys yet while another key of "
				f"{origin} is trusted here (a rotation on its way): tried again shortly",
			)
		if key is None:
			return Verdict(
				"unknown",
				f"signed by key {key_id} of {origin}, which this site has not received: it is listed in Spine "
				"Trusted Site once that site's key arrives on spine.keys; trust it there, then Replay this entry",
			)
		if key.status == "Revoked":
			return Verdict("revoked", f"signed by key {key_id} of {key.site}, which is revoked on this site")
		if not signing.verify(key.public_key, body):
			return Verdict(
				"bad",
				f"its signature does not match: the message was changed after signing, or key {key_id} of "
				f"{key.site} did not sign it",
			)
		if origin != key.site:
			return Verdict(
				"forged", f"it says it comes from {origin} but is signed by {key.site}'s key {key_id}"
			)
		if key.status == "Pending":
			return Verdict(
				"pending",
				f"signed by key {key_id} of {key.site} (fingerprint {key.fingerprint}), which waits for a System "
				"Manager to trust it in Spine Trusted Site; trust it, then Replay this entry",
			)
		return Verdict("ok", site=key.site)


def admit(verdict: Verdict, require_signature: bool, accept_from: list[str], what: str) -> Outcome | None:
	"""The outcome when ``what`` (a config row, a sync rule) must not handle the message, else None.

	A signature that does not verify, a revoked key or another site's key is refused everywhere. Where
	nothing is required (no *Require signature*, empty *Accept from*) a message that is unsigned or
	signed by a key not trusted yet is handled as before, its origin taken at its word. A rotated key
	still on its way is waited for (tried again on the retry schedule)."""
	if verdict.kind in ("bad", "revoked", "forged"):
		return message_log.invalid(verdict.reason)
	if verdict.kind == "ok":
		if accept_from and verdict.site not in accept_from:
			return message_log.skipped(
				f"from {verdict.site}, which {what} does not accept (Accept from: {', '.join(accept_from)})"
			)
		return None
	if not require_signature and not accept_from:
		return None
	if verdict.kind == "unsigned":
		needs = "requires a signature" if require_signature else f"accepts only {', '.join(accept_from)}"
		return message_log.invalid(f"{verdict.reason}, and {what} {needs}")
	if verdict.kind == "awaited":
		return message_log.retry(verdict.reason, SpineError(verdict.reason))
	return message_log.skipped(verdict.reason)


def accept_list(text: str | None) -> list[str]:
	"""The sites of an *Accept from* field (one per line, or comma-separated)."""
	return [s.strip() for s in (text or "").replace(",", "\n").splitlines() if s.strip()]


def receive(message: dict[str, Any]) -> None:
	"""Built-in handler of ``spine.keys``: record another site's key.

	The key message must be signed by the key it announces. A key already listed is left as it is
	(a revocation stays). A new key is Trusted when its site's trusted previous key endorsed it (a
	rotation), or when a row made in advance names its site and fingerprint; otherwise Pending."""
	from spine.errors import SkipMessage

	body = message.get("Payload") or {}
	site, public_text = body.get("site"), body.get("public_key") or ""
	try:
		public_key = signing.public_key_bytes(public_text)
	except ValueError as e:
		raise SkipMessage(f"the key message of {site} carries no usable public key ({e})") from None
	key_id = signing.key_id(public_key)
	if not signing.verify(public_key, message) or (message.get("Header") or {}).get("OriginSite") != site:
		raise SkipMessage(f"the key message of {site} (key {key_id}) is not signed by that key for that site")
	if frappe.db.exists(DOCTYPE, {"key_id": key_id}):
		return
	fingerprint = signing.fingerprint(public_key)
	values = {"key_id": key_id, "public_key": public_text, "first_seen": now_datetime()}
	waiting = frappe.db.get_value(
		DOCTYPE, {"site": site, "fingerprint": fingerprint, "key_id": ("in", ("", None))}
	)
	if waiting:  # trusted (or revoked) in advance by its fingerprint
		frappe.db.set_value(DOCTYPE, waiting, values)
		return
	status, endorsed_by = "Pending", None
	previous = body.get("previous_key_id")
	if previous and body.get("endorsement"):
		earlier = frappe.db.get_value(
			DOCTYPE, {"key_id": previous, "site": site}, ["status", "public_key"], as_dict=True
		)
		if (
			earlier
			and earlier.status == "Trusted"
			and signing.endorsed(
				signing.public_key_bytes(earlier.public_key), site, public_key, body["endorsement"]
			)
		):
			status, endorsed_by = "Trusted", previous
	frappe.get_doc(
		{
			"doctype": DOCTYPE,
			"site": site,
			"status": status,
			"fingerprint": fingerprint,
			"endorsed_by": endorsed_by,
			**values,
		}
	).insert(ignore_permissions=True)
	log.info("Spine on %s: key %s of %s recorded as %s", frappe.local.site, key_id, site, status)


def validate_row(doc) -> None:
	"""What a Spine Trusted Site row must be; raises ``frappe.ValidationError`` saying what to fix."""
	doc.site = (doc.site or "").strip()
	if not doc.site or any(c.isspace() for c in doc.site):
		frappe.throw(
			f"Site {doc.site!r}: write the other site's name (its Header.OriginSite), without spaces"
		)
	doc.fingerprint = re.sub(r"[\s:]", "", doc.fingerprint or "").lower()
	if doc.fingerprint and not _HEX64.match(doc.fingerprint):
		frappe.throw("Fingerprint: paste the 64 hexadecimal digits the other site's Spine Settings shows")
	if doc.public_key:
		actual = signing.fingerprint(signing.public_key_bytes(doc.public_key))
		if doc.fingerprint and doc.fingerprint != actual:
			frappe.throw(
				f"Fingerprint {doc.fingerprint} is not the fingerprint of this row's public key ({actual})"
			)
		doc.fingerprint = actual
	if doc.status == "Trusted" and not doc.fingerprint:
		frappe.throw("To trust a key before it arrives, paste its fingerprint")
	if doc.key_id and frappe.db.exists(DOCTYPE, {"key_id": doc.key_id, "name": ("!=", doc.name)}):
		frappe.throw(f"Key {doc.key_id} is listed already")
