"""What signing costs:

* per message, in-process: signing an envelope (canonical bytes + Ed25519) as capture does, and
  checking one (canonical bytes + verification against a Spine Trusted Site key) as the processor
  does; the envelope is a real ToDo's (``doc.as_dict()``);
* save → handler latency through the real Procfile processes with signing on and the consumer
  row requiring a signature (the site trusts its own key), beside signing off and nothing required.

    SPINE_BENCH=/path/to/frappe-bench SPINE_SITE=test.local benchmarks/run.sh signing
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from pathlib import Path

from common import connect_site, procfile_pipeline, save_to_handler_ms, summary, write_results

DEMO = "spine.demo"


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--messages", type=int, default=2000, help="envelopes signed and checked in-process")
	parser.add_argument("--samples", type=int, default=40, help="saves timed one at a time, each setting")
	parser.add_argument("--rounds", type=int, default=3, help="rounds of each, alternated")
	parser.add_argument("--out", default="benchmarks/results/signing.json")
	args = parser.parse_args()
	out = str((Path.cwd() / args.out).resolve())
	frappe = connect_site()

	from spine import envelope, signing
	from spine.producer import signing_key
	from spine.settings.trusted_keys import Key, KeyRing

	signing_key.ensure_key()
	frappe.db.commit()
	todo = frappe.get_doc({"doctype": "ToDo", "description": "signing benchmark " * 4}).insert()
	frappe.db.rollback()
	bodies = [
		envelope.build(
			doctype="ToDo",
			docname=todo.name,
			event="on_update",
			topic="bench",
			payload=todo.as_dict(),
			origin="bench",
			origin_site=frappe.local.site,
		).body  # fmt: skip
		for _ in range(args.messages)
	]
	signer = signing.Signer.new()[0]
	sign_us = _per_message_us(lambda: [signer.sign_body(b) for b in bodies], len(bodies))
	ring = KeyRing()
	ring.by_id[signer.key_id] = Key(
		frappe.local.site, signer.key_id, "Trusted", signing.fingerprint(signer.public_key), signer.public_key
	)
	verdicts = []
	check_us = _per_message_us(lambda: verdicts.extend(ring.judge(b) for b in bodies), len(bodies))
	assert all(v.kind == "ok" for v in verdicts), {v.kind for v in verdicts}

	put_back = _trust_own_key(frappe)
	run = uuid.uuid4().hex[:6]
	samples: dict[str, list[float]] = {"signed, required": [], "unsigned, not required": []}
	topic = f"bench-sign-{run}"
	consumer_row = {"topic": topic, "document_type": "ToDo", "event_handler": f"{DEMO}.record_call"}
	try:
		with procfile_pipeline(frappe, run, [{"document_type": "ToDo", "topic": topic, "on_update": 1}],
				[consumer_row], [topic], 2):  # fmt: skip
			# one pipeline, rounds alternating (signed, unsigned, signed, ...) so drift hits both alike
			for round_no in range(2 * args.rounds):
				label, sign = (("signed, required", 1), ("unsigned, not required", 0))[round_no % 2]
				frappe.db.set_single_value("Spine Settings", "sign_messages", sign)
				consumer = frappe.get_single("Spine Consumer Config")
				consumer.set("configs", [{**consumer_row, "require_signature": sign}])
				consumer.save(ignore_permissions=True)
				frappe.db.commit()
				frappe.clear_document_cache("Spine Settings", "Spine Settings")
				samples[label] += save_to_handler_ms(frappe, topic, max(1, args.samples // args.rounds))
		latency = {label: summary(values) for label, values in samples.items()}
	finally:
		frappe.db.set_single_value("Spine Settings", "sign_messages", 1)
		put_back()
		frappe.db.commit()
		frappe.clear_document_cache("Spine Settings", "Spine Settings")

	on, off = latency["signed, required"], latency["unsigned, not required"]
	rows = [
		("sign one envelope (capture), median µs", f"{sign_us:.0f}"),
		("check one envelope (processor: canonical bytes + verify), median µs", f"{check_us:.0f}"),
		("sign + check per message (goal ≤ 200 µs)", f"{sign_us + check_us:.0f} µs"),
		("save → handler p50 / p95, signed and required", f"{on['median']:.1f} / {on['p95']:.1f} ms"),
		("save → handler p50 / p95, unsigned", f"{off['median']:.1f} / {off['p95']:.1f} ms"),
		("signed / unsigned p50 (goal: unchanged)", f"{on['median'] / off['median']:.2f}"),
	]
	write_results(out, "signing", rows, {
		"sign_us": sign_us, "check_us": check_us, "sign_and_check_us": sign_us + check_us, "payload_fields": len(todo.as_dict()), "latency_ms": latency})  # fmt: skip


def _per_message_us(run, n: int, rounds: int = 5) -> float:
	times = []
	for _ in range(rounds):
		started = time.perf_counter()
		run()
		times.append((time.perf_counter() - started) / n * 1e6)
	return statistics.median(times)


def _trust_own_key(frappe):
	"""This site's own key Trusted in Spine Trusted Site, so its own messages pass a signature check;
	returns what puts it back: a row the benchmark added is deleted, a row the site had (a used site
	that consumed spine.keys with its own messages handled lists its key already) gets its status back."""
	settings = frappe.get_single("Spine Settings")
	existing = frappe.db.get_value(
		"Spine Trusted Site", {"key_id": settings.signing_key_id}, ["name", "status"]
	)
	if existing:
		name, status = existing
		frappe.db.set_value("Spine Trusted Site", name, "status", "Trusted")
		frappe.db.commit()
		return lambda: frappe.db.set_value("Spine Trusted Site", name, "status", status)
	row = frappe.get_doc({"doctype": "Spine Trusted Site", "site": frappe.local.site, "status": "Trusted",
		"key_id": settings.signing_key_id, "public_key": settings.signing_public_key}).insert(ignore_permissions=True)  # fmt: skip
	frappe.db.commit()
	return lambda: frappe.delete_doc("Spine Trusted Site", row.name, ignore_permissions=True, force=True)


if __name__ == "__main__":
	main()
