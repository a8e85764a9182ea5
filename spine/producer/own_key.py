"""Sign what this site publishes with its own key (made and rotated by ``signing_key``).

The private key is read from Frappe's encrypted password store once per process and key, never
kept anywhere else.
"""

from __future__ import annotations

from typing import Any

import frappe
from frappe.utils.password import get_decrypted_password

from spine import logs, signing

log = logs.logger(__name__)
SETTINGS = "Spine Settings"
_SECRET_FIELD = "signing_private_key"
_signers: dict[tuple[str, str], signing.Signer] = {}  # (site, key id) -> its signer, once per process


def sign_body(body: dict[str, Any]) -> None:
	"""Sign ``body`` (an envelope as a dict) with this site's key, if signing is on and a key exists."""
	signer = current_signer()
	if signer is not None:
		signer.sign_body(body)


def current_signer() -> signing.Signer | None:
	"""This site's signer, or None when signing is off (Spine Settings) or no key was made yet."""
	settings = frappe.get_cached_doc(SETTINGS)
	if not settings.get("sign_messages") or not settings.get("signing_key_id"):
		return None
	key = (frappe.local.site, settings.signing_key_id)
	signer = _signers.get(key)
	if signer is None:
		secret = get_decrypted_password(SETTINGS, SETTINGS, _SECRET_FIELD, raise_exception=False)
		if not secret:
			log.error("Spine on %s: the signing key %s has no private key stored; messages go unsigned. "
				"Run `bench --site %s spine-rotate-key` to make a new one.", key[0], key[1], key[0])  # fmt: skip
			return None
		signer = _signers[key] = signing.Signer(bytes.fromhex(secret))
	return signer
