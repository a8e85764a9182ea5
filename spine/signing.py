"""Ed25519 signatures over Spine envelopes, and the statement that endorses a site's next key.
Plain Python (``cryptography``, which Frappe installs): importing it never imports Frappe.

What is signed is the canonical form of the envelope's ``Header`` (without ``Signature``) and
``Payload``: JSON with sorted keys, no spaces, UTF-8. A message changed in any header or payload
field after signing, or signed by another key, does not verify. ``Retry`` and the Kafka headers
(routing hints that repeat the body) are not covered.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_ID_HEADER = "KeyId"
SIGNATURE_HEADER = "Signature"
_RAW = {"encoding": serialization.Encoding.Raw, "format": serialization.PublicFormat.Raw}


def canonical(header: dict[str, Any], payload: Any) -> bytes:
	"""The bytes a signature covers: ``{"Header": header without Signature, "Payload": payload}``."""
	unsigned = {k: v for k, v in header.items() if k != SIGNATURE_HEADER}
	return json.dumps(
		{"Header": unsigned, "Payload": payload},
		sort_keys=True,
		separators=(",", ":"),
		ensure_ascii=False,
		default=str,
	).encode()


def fingerprint(public_key: bytes) -> str:
	"""SHA-256 of the raw public key, in hex: what an operator compares between two sites."""
	return hashlib.sha256(public_key).hexdigest()


def key_id(public_key: bytes) -> str:
	"""The key's id in ``Header.KeyId``: the first 16 hex digits of its fingerprint."""
	return fingerprint(public_key)[:16]


class Signer:
	"""A site's private key: signs envelopes and endorses the site's next key."""

	def __init__(self, private_key: bytes):
		self._key = Ed25519PrivateKey.from_private_bytes(private_key)
		self.public_key = self._key.public_key().public_bytes(**_RAW)
		self.key_id = key_id(self.public_key)

	@classmethod
	def new(cls) -> tuple[Signer, bytes]:
		"""A new key pair: the signer and its private key's raw bytes (to keep as a secret)."""
		raw = Ed25519PrivateKey.generate().private_bytes(
			serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
		)
		return cls(raw), raw

	def sign_body(self, body: dict[str, Any]) -> None:
		"""Put ``KeyId`` and ``Signature`` into ``body["Header"]`` (an envelope as a dict)."""
		header = body["Header"]
		header[KEY_ID_HEADER] = self.key_id
		header.pop(SIGNATURE_HEADER, None)
		header[SIGNATURE_HEADER] = _b64(self._key.sign(canonical(header, body.get("Payload"))))

	def endorse(self, site: str, next_public_key: bytes) -> str:
		"""This key's signature saying ``next_public_key`` is ``site``'s next key (rotation)."""
		return _b64(self._key.sign(_endorsement(site, next_public_key)))


def verify(public_key: bytes, body: dict[str, Any]) -> bool:
	"""Whether ``body`` (an envelope as a dict) carries a valid signature by ``public_key``."""
	header = body.get("Header") or {}
	signature = header.get(SIGNATURE_HEADER)
	if not isinstance(signature, str):
		return False
	try:
		_public_key(public_key).verify(
			base64.b64decode(signature, validate=True), canonical(header, body.get("Payload"))
		)
	except (InvalidSignature, ValueError):
		return False
	return True


def endorsed(previous_public_key: bytes, site: str, next_public_key: bytes, endorsement: str) -> bool:
	"""Whether ``endorsement`` is ``previous_public_key``'s signature naming ``next_public_key`` as
	``site``'s next key."""
	try:
		Ed25519PublicKey.from_public_bytes(previous_public_key).verify(
			base64.b64decode(endorsement, validate=True), _endorsement(site, next_public_key)
		)
	except (InvalidSignature, ValueError):
		return False
	return True


def public_key_text(public_key: bytes) -> str:
	return _b64(public_key)


def public_key_bytes(text: str) -> bytes:
	"""The raw public key of its base64 text; raises ``ValueError`` if it is not one."""
	raw = base64.b64decode(text, validate=True)
	if len(raw) != 32:
		raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
	return raw


@functools.lru_cache(maxsize=1024)
def _public_key(raw: bytes) -> Ed25519PublicKey:
	return Ed25519PublicKey.from_public_bytes(raw)


def _endorsement(site: str, next_public_key: bytes) -> bytes:
	return b"spine-next-key\0" + site.encode() + b"\0" + next_public_key


def _b64(data: bytes) -> str:
	return base64.b64encode(data).decode()
