"""This site's signing key: made on install, kept encrypted by Frappe, published on ``spine.keys``
for other sites to trust, and rotated on request (``own_key`` signs with it).

The private key lives only in Frappe's encrypted password store (``__Auth``, under Spine Settings'
``signing_private_key``): never in a field, a form, a log or a message. Spine Settings shows the key
id, the fingerprint and the public key.
"""

from __future__ import annotations

from typing import Any

import frappe
from frappe.utils.password import get_decrypted_password, set_encrypted_password

from spine import logs, signing
from spine.config.topics import KEY_DOCTYPE, KEYS_TOPIC
from spine.producer.own_key import _SECRET_FIELD, SETTINGS

log = logs.logger(__name__)


def ensure_key() -> str:
	"""Make this site's first key (and switch signing on) if it has none; returns the key id."""
	settings = frappe.get_single(SETTINGS)
	if settings.signing_key_id:
		return settings.signing_key_id
	return _new_key(settings, previous=None)


def rotate() -> str:
	"""Replace this site's key with a new one, endorsed by the old one (sites that trust the old key
	trust the new one when it arrives); returns the new key id."""
	previous = current_signer_even_if_off()
	return _new_key(frappe.get_single(SETTINGS), previous=previous)


def current_signer_even_if_off() -> signing.Signer | None:
	settings = frappe.get_single(SETTINGS)
	secret = get_decrypted_password(SETTINGS, SETTINGS, _SECRET_FIELD, raise_exception=False)
	return signing.Signer(bytes.fromhex(secret)) if settings.signing_key_id and secret else None


def publish_key() -> None:
	"""Put this site's current public key on ``spine.keys`` (again): for a site that joined later."""
	settings = frappe.get_single(SETTINGS)
	signer = current_signer_even_if_off()
	if signer is None:
		frappe.throw(
			f"{frappe.local.site} has no signing key yet: run bench --site {frappe.local.site} migrate"
		)
	endorsement = None
	if settings.previous_key_id:  # the endorsement is not kept: sites that missed the rotation trust by hand
		log.info(
			"Spine on %s: key %s published again without its endorsement", frappe.local.site, signer.key_id
		)
	_publish(signer, settings.previous_key_id or None, endorsement)


def announce() -> bool:
	"""Publish the current public key if it was never written for publishing (a key made while the
	site had no kafka block); the relay calls this when it starts serving the site. Returns whether
	it wrote one."""
	settings = frappe.get_single(SETTINGS)
	if not settings.signing_key_id or frappe.db.exists(
		"Message Log",
		{"direction": "Outbound", "topic": KEYS_TOPIC, "document_name": settings.signing_key_id},
	):
		return False
	publish_key()
	return True


def _new_key(settings, previous: signing.Signer | None) -> str:
	signer, raw = signing.Signer.new()
	set_encrypted_password(SETTINGS, SETTINGS, raw.hex(), _SECRET_FIELD)
	first = not settings.signing_key_id
	settings.signing_key_id = signer.key_id
	settings.signing_fingerprint = signing.fingerprint(signer.public_key)
	settings.signing_public_key = signing.public_key_text(signer.public_key)
	settings.previous_key_id = previous.key_id if previous else None
	if first:
		settings.sign_messages = 1
	settings.flags.ignore_permissions = True
	settings.save()
	frappe.clear_document_cache(SETTINGS, SETTINGS)
	endorsement = previous.endorse(frappe.local.site, signer.public_key) if previous else None
	if frappe.conf.get("kafka"):  # else the relay announces it once the site has a broker
		_publish(signer, previous.key_id if previous else None, endorsement)
	log.info("Spine on %s: signing key %s made%s", frappe.local.site, signer.key_id,
		f" (endorsed by {previous.key_id})" if previous else "")  # fmt: skip
	return signer.key_id


def _publish(signer: signing.Signer, previous_key_id: str | None, endorsement: str | None) -> None:
	from spine.producer import capture

	payload = {
		"site": frappe.local.site,
		"key_id": signer.key_id,
		"public_key": signing.public_key_text(signer.public_key),
		"fingerprint": signing.fingerprint(signer.public_key),
		"previous_key_id": previous_key_id,
		"endorsement": endorsement,
	}
	capture.capture_raw(KEY_DOCTYPE, signer.key_id, "on_update", KEYS_TOPIC, payload, signer=signer)
