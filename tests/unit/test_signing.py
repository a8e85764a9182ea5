"""Envelope signatures: what verifies, and every change after signing that does not."""

from __future__ import annotations

import copy

from spine import envelope, signing


def body() -> dict:
	env = envelope.build(doctype="Item", docname="ITEM-1", event="on_update", topic="masters.item",
		payload={"name": "ITEM-1", "rate": 12.5, "title": "Café"}, origin="ho", origin_site="ho.example.com")  # fmt: skip
	return copy.deepcopy(env.body)


def test_a_signed_envelope_verifies_with_its_key_only():
	signer, _ = signing.Signer.new()
	other, _ = signing.Signer.new()
	signed = body()
	signer.sign_body(signed)
	assert signed["Header"]["KeyId"] == signer.key_id == signing.key_id(signer.public_key)
	assert signing.verify(signer.public_key, signed)
	assert not signing.verify(other.public_key, signed)
	# the wire form round-trips: what a consumer parses verifies
	parsed = envelope.parse(envelope.encode(envelope.from_body(signed)))
	assert signing.verify(signer.public_key, parsed.body)


def test_any_change_after_signing_breaks_the_signature():
	signer, _ = signing.Signer.new()
	signed = body()
	signer.sign_body(signed)
	changes = [
		lambda b: b["Payload"].update(rate=13),
		lambda b: b["Header"].update(OriginSite="branch.example.com"),
		lambda b: b["Header"].update(KeyId="0" * 16),
		lambda b: b["Header"].pop("Timestamp"),
		lambda b: b["Header"].update(Signature=b["Header"]["Signature"][:-4] + "AAA="),
		lambda b: b["Header"].update(Signature="not base64!"),
		lambda b: b["Header"].pop("Signature"),
	]
	for change in changes:
		tampered = copy.deepcopy(signed)
		change(tampered)
		assert not signing.verify(signer.public_key, tampered)
	reordered = {"Payload": dict(reversed(list(signed["Payload"].items()))), "Header": signed["Header"]}
	assert signing.verify(signer.public_key, reordered), "key order is not part of what is signed"


def test_a_private_key_kept_as_bytes_signs_as_before_and_endorses_the_next_key():
	first, raw = signing.Signer.new()
	again = signing.Signer(raw)
	assert again.key_id == first.key_id
	following, _ = signing.Signer.new()
	endorsement = first.endorse("ho.example.com", following.public_key)
	assert signing.endorsed(first.public_key, "ho.example.com", following.public_key, endorsement)
	assert not signing.endorsed(first.public_key, "branch.example.com", following.public_key, endorsement)
	assert not signing.endorsed(following.public_key, "ho.example.com", following.public_key, endorsement)
	text = signing.public_key_text(following.public_key)
	assert signing.public_key_bytes(text) == following.public_key
	assert signing.fingerprint(following.public_key).startswith(following.key_id)
