"""Producer benchmark: added time per save, and relay throughput (pending → confirmed by the broker).

Run with the bench's Python on a test site (it commits ToDos and Message Log rows):
    SPINE_BENCH=/path/to/frappe-bench SPINE_SITE=test.local benchmarks/run.sh producer
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from common import connect_site, local_broker, site_kafka, summary, write_results

from spine import compat


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--saves", type=int, default=300, help="saves per configuration")
	parser.add_argument(
		"--transaction-sizes", default="1,500,5000", help="saves per transaction for the capture hook's cost"
	)
	parser.add_argument("--relay-rows", type=int, default=10_000, help="pending rows the relay publishes")
	parser.add_argument("--out", default="benchmarks/results/producer.json")
	args = parser.parse_args()
	out = str((__import__("pathlib").Path.cwd() / args.out).resolve())

	frappe = connect_site()
	from spine.producer import capture, relay
	from spine.settings import config_cache

	config = frappe.get_single("Spine Producer Config")
	saved_rows = [
		{k: v for k, v in r.as_dict().items() if k not in ("name", "parent")} for r in config.configs
	]
	saved_enabled = config.enabled

	def route(doctype: str | None, topic: str, **extra) -> None:
		doc = frappe.get_single("Spine Producer Config")
		doc.enabled = 1
		doc.set(
			"configs",
			[{"document_type": doctype, "topic": topic, "on_update": 1, **extra}] if doctype else [],
		)
		doc.save(ignore_permissions=True)
		frappe.db.commit()

	hooks = frappe.get_doc_hooks()
	with_spine = {k: dict(v) for k, v in hooks.items()}
	without_spine = {
		k: {e: [m for m in ms if not m.startswith("spine.")] for e, ms in v.items()} for k, v in hooks.items()
	}

	try:
		with local_broker() as bootstrap, site_kafka(bootstrap):
			topic = f"bench-{uuid.uuid4().hex[:6]}"
			todos = [frappe.get_doc({"doctype": "ToDo", "description": "bench"}).insert() for _ in range(20)]
			frappe.db.commit()
			times: dict[str, list[float]] = {
				"not involved": [], "unconfigured": [], "configured": [], "condition and fields": [],
			}  # fmt: skip
			route(
				"ToDo",
				topic,
				condition='doc.status == "Open"',
				published_fields="description\nstatus\npriority",
			)
			shaped_routes = config_cache.producer_routes()
			route("ToDo", topic)
			configured_routes = config_cache.producer_routes()
			version = tuple(frappe.db.sql(config_cache._PRODUCER_VERSION_SQL)[0])
			frappe.db.commit()

			def use_routes(routes_in_use: dict) -> None:
				# what the capture hook finds kept for the config's version: it still reads the version
				config_cache._kept[(frappe.local.site, "producer")] = (version, routes_in_use)

			modes = {  # (doc_events hooks, routes Spine sees) — switched per save, so drift hits all alike
				"not involved": (without_spine, {}),
				"unconfigured": (with_spine, {"Note": configured_routes["ToDo"]}),
				"configured": (with_spine, configured_routes),
				"condition and fields": (with_spine, shaped_routes),
			}
			for i in range(args.saves):
				for label, (hooks_in_use, routes_in_use) in modes.items():
					frappe.local.doc_events_hooks = hooks_in_use
					use_routes(routes_in_use)
					t = todos[i % len(todos)]
					t.description = f"{label} {i} {time.time()}"
					start = time.perf_counter()
					t.save()
					frappe.db.commit()
					times[label].append(time.perf_counter() - start)
				if i % 50 == 49:
					relay.drain()
			# the time spent inside Spine's capture hook per configured save, in transactions of 1 (repeated),
			# 500 and 5,000 saves: early and late in them (whole-save differences are dominated by
			# Frappe's own per-save work, which grows in a big transaction: see DESIGN.md)
			frappe.local.doc_events_hooks, routes_in_use = modes["configured"]
			use_routes(routes_in_use)
			spent: list[float] = []
			original = capture.on_event

			def timed(*a, **k):
				start = time.perf_counter()
				try:
					return original(*a, **k)
				finally:
					spent[-1] += (time.perf_counter() - start) * 1000

			in_transaction = {}
			capture.on_event = timed
			try:
				for size in [int(n) for n in args.transaction_sizes.split(",") if n]:
					per_save = []
					for _ in range(300 if size == 1 else 1):
						for i in range(size):
							spent.append(0.0)
							frappe.get_doc({"doctype": "ToDo", "description": f"bench txn {i}"}).insert()
							per_save.append(spent[-1])
						frappe.db.commit()
					tenth = max(1, len(per_save) // 10)
					in_transaction[size] = {
						"capture_ms_median": statistics.median(per_save),
						"capture_ms_first_tenth": statistics.median(per_save[:tenth]),
						"capture_ms_last_tenth": statistics.median(per_save[-tenth:]),
					}
					frappe.db.delete("ToDo", {"description": ("like", "bench txn %")})
					frappe.db.commit()
			finally:
				capture.on_event = original
			frappe.local.doc_events_hooks = with_spine
			route("Note", topic)
			lookups = 100_000
			unconfigured = frappe.new_doc("ToDo")
			config_cache.producer_routes()
			start = time.perf_counter()
			for _ in range(lookups):
				capture.on_event(unconfigured, "on_update")
			lookup_us = (time.perf_counter() - start) / lookups * 1e6

			# relay throughput: a backlog captured while nobody drains, then one drain
			route("ToDo", topic)
			relay.drain()
			frappe.db.sql("DELETE FROM `tabMessage Log` WHERE direction = 'Outbound' AND topic = %s", topic)
			frappe.db.commit()
			kick, relay.kick = relay.kick, lambda: None  # keep the after-commit kick out of the measurement
			try:
				per_doc = max(1, args.relay_rows // len(todos))
				for n in range(per_doc):
					for t in todos:
						t.description = f"relay {n}"
						t.save()
					frappe.db.commit()
			finally:
				relay.kick = kick
			pending = relay.pending_count()
			start = time.perf_counter()
			published = relay.drain()
			relay_seconds = time.perf_counter() - start
	finally:
		doc = frappe.get_single("Spine Producer Config")
		doc.enabled = saved_enabled
		doc.set("configs", saved_rows)
		doc.save(ignore_permissions=True)
		frappe.db.commit()
		frappe.destroy()

	ms = {k: summary([x * 1000 for x in v]) for k, v in times.items()}
	base = ms["not involved"]["median"]
	rows = [
		("save+commit, Spine not involved (median ms)", f"{base:.2f}"),
		("save+commit, DocType unconfigured (median ms)", f"{ms['unconfigured']['median']:.2f}"),
		("save+commit, DocType configured (median ms)", f"{ms['configured']['median']:.2f}"),
		("added per save, unconfigured (median ms)", f"{ms['unconfigured']['median'] - base:+.3f}"),
		("added per save, configured (median ms)", f"{ms['configured']['median'] - base:+.3f}"),
		(
			"added per save, configured with a condition and 3 fields (median ms)",
			f"{ms['condition and fields']['median'] - base:+.3f}",
		),  # fmt: skip
		*(
			(
				f"Spine's capture hook per configured insert, {size:,} per transaction: median (first / last tenth) (ms)",
				f"{v['capture_ms_median']:.3f} ({v['capture_ms_first_tenth']:.3f} / {v['capture_ms_last_tenth']:.3f})",
			)
			for size, v in in_transaction.items()
		),  # fmt: skip
		("ratio configured / not involved", f"{ms['configured']['median'] / base:.2f}"),
		("capture hook, unconfigured DocType (µs per call)", f"{lookup_us:.2f}"),
		("relay: rows published / pending", f"{published} / {pending}"),
		("relay throughput (messages/s, pending → confirmed)", f"{published / relay_seconds:,.0f}"),
	]
	write_results(
		out,
		"Spine producer",
		rows,
		{
			"save_ms": ms,
			"added_ms_median": {
				"unconfigured": ms["unconfigured"]["median"] - base,
				"configured": ms["configured"]["median"] - base,
				"condition_and_fields": ms["condition and fields"]["median"] - base,
			},
			"in_transaction": in_transaction,
			"capture_hook_unconfigured_us": lookup_us,
			"relay": {
				"rows": pending,
				"published": published,
				"seconds": relay_seconds,
				"messages_per_second": published / relay_seconds,
			},
			"spread_ms": {k: statistics.pstdev([x * 1000 for x in v]) for k, v in times.items()},
		},
	)


if __name__ == "__main__":
	main()
