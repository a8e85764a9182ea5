"""Ecosystem benchmark: what the schema registry's framing and the CloudEvents headers cost.

On Apache Kafka with Apicurio Registry 3.3.3 (started as the tests start it), rounds alternated so
drift hits every variant alike, medians of the rounds:
- relay throughput (a backlog of single-commit saves, pending → confirmed by the broker), Spine JSON
  vs Registry JSON Schema (schemas registered and cached: the first round of each is a warm-up), and
  Spine JSON with the CloudEvents headers on vs off;
- save → handler through the Procfile processes (spine-relay, eventdispatcher, jsonworker), idle, a
  producer row of each wire format in turn (the consumer decodes the framed ones through the registry).

Goal (issue 40): registry framing within 10 % of Spine JSON once schemas are cached.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from common import (
	connect_site,
	local_broker,
	procfile_pipeline,
	save_to_handler_ms,
	site_kafka,
	summary,
	write_results,
)

SPINE_JSON, REGISTRY = "Spine JSON", "Registry JSON Schema"
DEMO = "spine.demo"


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--relay-rows", type=int, default=2000, help="pending rows per relay round")
	parser.add_argument("--rounds", type=int, default=4, help="measured rounds per variant")
	parser.add_argument("--samples", type=int, default=25, help="save → handler samples per round")
	parser.add_argument("--out", default="benchmarks/results/ecosystem.json")
	args = parser.parse_args()
	out = str((__import__("pathlib").Path.cwd() / args.out).resolve())

	frappe = connect_site()
	from spine.producer import relay
	from tests.ecosystem.apicurio import Apicurio

	def set_producer(rows: list[dict]) -> None:
		doc = frappe.get_single("Spine Producer Config")
		doc.enabled = 1
		doc.set("configs", rows)
		doc.save(ignore_permissions=True)
		frappe.db.commit()

	saved = frappe.get_single("Spine Producer Config").as_dict()
	registry = Apicurio().start()
	results: dict = {"relay": {}, "save_to_handler_ms": {}}
	try:
		with local_broker() as bootstrap:
			kafka = {"bootstrap.servers": bootstrap, "spine.schema.registry.url": registry.url}
			todos = [
				frappe.get_doc({"doctype": "ToDo", "description": "eco bench"}).insert() for _ in range(20)
			]
			frappe.db.commit()

			def relay_round(wire: str, cloudevents: bool) -> float:
				topic = f"eco-{uuid.uuid4().hex[:8]}"
				with site_kafka(bootstrap, **{**kafka, "spine.cloudevents": cloudevents}):
					set_producer(
						[{"document_type": "ToDo", "topic": topic, "on_update": 1, "wire_format": wire}]
					)
					kick, relay.kick = relay.kick, lambda: None  # the drain below is what is measured
					try:
						for n in range(max(1, args.relay_rows // len(todos))):
							for t in todos:
								t.description = f"eco {n}"
								t.save()
								frappe.db.commit()  # production traffic: one commit per save
					finally:
						relay.kick = kick
						frappe.flags.spine_relay_kick_registered = False  # the stand-in did not clear it
					saves = max(1, args.relay_rows // len(todos)) * len(todos)
					start = time.perf_counter()
					published = relay.drain()
					seconds = time.perf_counter() - start
					held = frappe.db.count(
						"Message Log", {"direction": "Outbound", "topic": topic, "status": "Pending"}
					)
					assert (
						published >= saves and not held
					), f"{published} published, {held} of {topic} left ({wire})"
					return published / seconds

			variants = {"spine_json": (SPINE_JSON, True), "registry_json": (REGISTRY, True),
				"spine_json_no_cloudevents": (SPINE_JSON, False)}  # fmt: skip
			rates: dict[str, list[float]] = {k: [] for k in variants}
			for round_no in range(args.rounds + 1):
				for key, (wire, ce) in variants.items():
					rate = relay_round(wire, ce)
					if round_no:  # the first round of each registers its schema and warms connections
						rates[key].append(rate)
				print(
					f"relay round {round_no}: "
					+ ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items() if v),
					flush=True,
				)
			for key, values in rates.items():
				results["relay"][key] = {"messages_per_second": statistics.median(values), "rounds": values}
			results["relay_registry_to_spine_json"] = (
				results["relay"]["registry_json"]["messages_per_second"]
				/ results["relay"]["spine_json"]["messages_per_second"]
			)
			results["relay_cloudevents_on_to_off"] = (
				results["relay"]["spine_json"]["messages_per_second"]
				/ results["relay"]["spine_json_no_cloudevents"]["messages_per_second"]
			)

			run = uuid.uuid4().hex[:6]
			topics = {SPINE_JSON: f"eco-lat-json-{run}", REGISTRY: f"eco-lat-reg-{run}"}
			consumer = [{"topic": t, "document_type": "ToDo", "event_handler": f"{DEMO}.record_call"}
				for t in topics.values()]  # fmt: skip
			first = [
				{
					"document_type": "ToDo",
					"topic": topics[SPINE_JSON],
					"on_update": 1,
					"wire_format": SPINE_JSON,
				}
			]
			with procfile_pipeline(frappe, run, first, consumer, list(topics.values()), 1, kafka=kafka):
				lat: dict[str, list[float]] = {SPINE_JSON: [], REGISTRY: []}
				for round_no in range(2 * args.rounds):
					wire = (SPINE_JSON, REGISTRY)[round_no % 2]
					set_producer(
						[
							{
								"document_type": "ToDo",
								"topic": topics[wire],
								"on_update": 1,
								"wire_format": wire,
							}
						]
					)
					time.sleep(1)
					lat[wire] += save_to_handler_ms(frappe, topics[wire], args.samples, pause=0.1)
			for wire, key in ((SPINE_JSON, "spine_json"), (REGISTRY, "registry_json")):
				results["save_to_handler_ms"][key] = summary(lat[wire])
			results["save_to_handler_registry_to_spine_json"] = (
				results["save_to_handler_ms"]["registry_json"]["median"]
				/ results["save_to_handler_ms"]["spine_json"]["median"]
			)
	finally:
		registry.stop()
		doc = frappe.get_single("Spine Producer Config")
		doc.enabled = saved.get("enabled")
		doc.set(
			"configs",
			[{k: v for k, v in r.items() if k not in ("name", "parent")} for r in saved.get("configs") or []],
		)
		doc.save(ignore_permissions=True)
		frappe.db.delete("ToDo", {"description": ("like", "eco %")})
		frappe.db.commit()
		frappe.destroy()

	r, s = results["relay"], results["save_to_handler_ms"]
	write_results(out, "ecosystem: schema registry framing and CloudEvents headers", [
		("relay, Spine JSON (msg/s, median of rounds)", f"{r['spine_json']['messages_per_second']:,.0f}"),
		("relay, Registry JSON Schema (msg/s)", f"{r['registry_json']['messages_per_second']:,.0f}"),
		("relay, registry ÷ Spine JSON", f"{results['relay_registry_to_spine_json']:.2f}"),
		("relay, Spine JSON without CloudEvents headers (msg/s)", f"{r['spine_json_no_cloudevents']['messages_per_second']:,.0f}"),
		("relay, CloudEvents headers on ÷ off", f"{results['relay_cloudevents_on_to_off']:.2f}"),
		("save → handler, Spine JSON, median / p95 (ms)", f"{s['spine_json']['median']:.1f} / {s['spine_json']['p95']:.1f}"),
		("save → handler, Registry JSON Schema, median / p95 (ms)", f"{s['registry_json']['median']:.1f} / {s['registry_json']['p95']:.1f}"),
		("save → handler, registry ÷ Spine JSON (median)", f"{results['save_to_handler_registry_to_spine_json']:.2f}"),
	], results)  # fmt: skip


if __name__ == "__main__":
	main()
