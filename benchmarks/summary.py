"""One table of every measure with its goal, from the results the benchmarks wrote.

Reads benchmarks/results/{producer,consumer,pipeline,sites,trickle,ceilings,metrics,benchwide,signing,cluster,membership,ecosystem}.json
of one run (``SPINE_BENCH_RUN``, which ``benchmarks/run.sh all`` sets, or the newest run found) and writes
benchmarks/results/summary.json. A figure this run did not measure counts as missed; the exit code is
1 when any goal is missed. ``SPINE_BENCH_BEFORE=<an earlier summary.json>`` adds its figures as a
"before" column (the README's before/after table: the same machine, the same hour). Keys are stable (tools may read them); each row says what its figure means.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# key, what it measures, unit, goal, "max" (lower is better) or "min" (higher is better), source, path
ROWS = [
	("save_to_handler_median_ms", "save → consumer handler, idle pipeline, median", "ms", 15, "max",
		"pipeline", ("save_to_handler_ms", "median")),
	("save_to_handler_p95_ms", "save → consumer handler, idle pipeline, p95", "ms", 25, "max",
		"pipeline", ("save_to_handler_ms", "p95")),
	("new_topic_first_message_s", "first message on a topic the dispatcher did not know", "s", 3, "max",
		"pipeline", ("new_topic_seconds",)),
	("ingest_messages_per_s", "ingest, Kafka → Message Log (3 partitions, 2 jsonworkers)", "msg/s", 10_000, "min",
		"consumer", ("ingest_messages_per_second",)),
	("stored_processed_per_message_per_s", "stored + processed, per-message no-op handler", "msg/s", 5_000,
		"min", "consumer", ("stored_and_processed_messages_per_second",)),
	("processed_batch_handler_per_s", "processed, batch no-op handler (one processor)", "msg/s", 10_000, "min",
		"consumer", ("batch_processed_messages_per_second",)),
	("relay_messages_per_s", "relay, outbox → broker confirmed", "msg/s", 25_000, "min",
		"producer", ("relay", "messages_per_second")),
	("import_handled_after_commit_s", "documents inserted in ONE transaction → all handled, after the commit",
		"s", 2, "max", "pipeline", ("import", "after_commit_seconds", "handled")),
	("added_per_configured_save_ms", "added per configured save (median)", "ms", 0.5, "max",
		"producer", ("added_ms_median", "configured")),
	("capture_hook_per_configured_save_1_per_txn_ms", "Spine's capture hook per configured save, one save per transaction (median)",
		"ms", 0.5, "max", "producer", ("in_transaction", "1", "capture_ms_median")),
	("capture_hook_per_configured_save_500_per_txn_ms", "Spine's capture hook per configured save, 500 in one transaction (median)",
		"ms", 0.5, "max", "producer", ("in_transaction", "500", "capture_ms_median")),
	("capture_hook_per_configured_save_5000_per_txn_last_tenth_ms",
		"Spine's capture hook per configured save, last tenth of 5,000 in one transaction (median)",
		"ms", 0.5, "max", "producer", ("in_transaction", "5000", "capture_ms_last_tenth")),
	("trickle_burst_handled_after_last_save_s", "1,000 saves, one commit each → all handled, after the last save",
		"s", 0.5, "max", "trickle", ("burst", "handled_after_last_save_s")),
	("trickle_sustained_saves_per_s", "single-commit saves kept up with (backlog under 1 s of traffic at the end)",
		"saves/s", 200, "min", "trickle", ("sustained_kept_up_per_second",)),
	("trickle_paced_100_handled_after_last_save_s", "single-commit saves paced at 100/s → all handled, after the last save",
		"s", 0.5, "max", "trickle", ("handled_after_last_save_s_by_rate", "100")),
	("trickle_paced_200_handled_after_last_save_s", "single-commit saves paced at 200/s → all handled, after the last save",
		"s", 1, "max", "trickle", ("handled_after_last_save_s_by_rate", "200")),
	("trickle_burst_spine_cpu_to_save_ratio", "CPU per single-commit message, relay + dispatcher + jsonworkers ÷ the save's own, 1,000-save burst",
		"×", 1.0, "max", "trickle", ("burst", "spine_cpu_to_save_ratio")),
	("trickle_worst_spine_cpu_to_save_ratio", "the same, worst of the burst and every paced rate kept up with",
		"×", 1.0, "max", "trickle", ("spine_cpu_to_save_ratio_worst",)),
	("trickle_25_spine_cpu_to_save_ratio", "Spine CPU per single-commit message ÷ the save's own, 25 saves/s (relay + dispatcher + jsonworkers + capture hook)",
		"×", 1.0, "max", "trickle", ("by_rate", "25", "spine_cpu_to_save_ratio")),
	("trickle_25_consumer_cpu_ms", "dispatcher + jsonworkers CPU per message, 25 saves/s", "ms", 2, "max",
		"trickle", ("by_rate", "25", "consumer_cpu_ms_per_message")),
	("trickle_save_to_handler_median_ms", "save → handler while saves trickle in, median", "ms", 50, "max",
		"trickle", ("latency", "save_to_handler_ms", "median")),
	("trickle_save_to_handler_p95_ms", "save → handler while saves trickle in, p95", "ms", 200, "max",
		"trickle", ("latency", "save_to_handler_ms", "p95")),
	("metrics_on_save_to_handler_ratio", "save → handler median with metrics on ÷ off", "×", 1.05, "max",
		"metrics", ("latency_on_vs_off",)),
	("metrics_on_ingest_ratio", "ingest with metrics on ÷ off", "×", 0.95, "min", "metrics", ("ingest_on_vs_off",)),
	("ingest_to_insert_ceiling_ratio", "ingest / plain multi-row INSERT … COMMIT of rows shaped alike (no Spine code)", "×", 0.8, "min",
		"derived", ("ingest_to_insert_ceiling",)),
	("relay_to_ceiling_ratio", "relay / lower of plain produce and plain outbox read-and-mark", "×", 0.5, "min",
		"derived", ("relay_to_ceiling",)),
	("sync_to_doc_insert_ratio", "sync A → B / Frappe doc.insert() of the same master", "×", 0.7, "min",
		"derived", ("sync_to_doc_insert",)),
	("added_per_shaped_save_ms", "added per configured save with a condition and chosen fields (median)", "ms",
		1.5, "max", "producer", ("added_ms_median", "condition_and_fields")),
	("capture_hook_unconfigured_us", "capture hook, unconfigured DocType", "µs", 10, "max",
		"producer", ("capture_hook_unconfigured_us",)),
	("sync_docs_per_s", "document sync A → B, simple master, committed on A → on B", "docs/s", 500, "min",
		"sites", ("sync", "docs_per_second")),
	("request_reply_median_ms", "request → reply between two sites, idle, median", "ms", 20, "max",
		"sites", ("request_reply_ms", "median")),
	("request_reply_p95_ms", "request → reply between two sites, idle, p95", "ms", 40, "max",
		"sites", ("request_reply_ms", "p95")),
	("dispatcher_memory_peak_ratio", "eventdispatcher peak RSS / RSS after the first 10,000 messages", "×", 1.10,
		"max", "consumer", ("memory", "dispatcher_peak_ratio")),
	("jsonworker_memory_peak_ratio", "jsonworkers peak RSS / RSS after the first 10,000 messages", "×", 1.10,
		"max", "consumer", ("memory", "jsonworker_peak_ratio")),
	("benchwide_20_sites_rss_ratio", "bench-wide processes for 20 sites, RSS / one site's set", "×", 2,
		"max", "benchwide", ("rss_ratio_to_one_site_set", "20")),
	("benchwide_20_sites_idle_cpu_percent", "bench-wide processes for 20 sites, idle CPU of Spine's processes", "%", 5,
		"max", "benchwide", ("by_sites", "20", "bench-wide", "idle_cpu_percent")),
	("benchwide_fairness_ratio", "one site's save → handler beside another's 100,000 backlog / idle, median",
		"×", 2, "max", "benchwide", ("fairness", "ratio")),
	("signing_sign_and_check_us", "sign + check one envelope", "µs", 200, "max", "signing", ("sign_and_check_us",)),
	("cluster_latency_ratio", "save → handler median, three brokers (acks=all, 2 in sync) ÷ one broker", "×", 1.5,
		"max", "cluster", ("cluster_latency_ratio",)),
	("cluster_relay_ratio", "relay throughput, three brokers ÷ one broker", "×", 0.5, "min", "cluster",
		("cluster_relay_ratio",)),
	("tls_latency_ratio", "save → handler median, TLS + SASL/SCRAM + ACLs ÷ plaintext", "×", 1.1, "max",
		"cluster", ("tls_latency_ratio",)),
	("static_member_restart_resumed_s", "Spine's eventdispatcher SIGKILLed and started again at once → storing again", "s",
		10, "max", "membership", ("spine_dispatcher_resumed_after_s",)),
	("registry_relay_ratio", "relay throughput, Registry JSON Schema ÷ Spine JSON (schemas cached)", "×", 0.9, "min",
		"ecosystem", ("relay_registry_to_spine_json",)),
	("registry_save_to_handler_ratio", "save → handler median, Registry JSON Schema ÷ Spine JSON", "×", 1.1, "max",
		"ecosystem", ("save_to_handler_registry_to_spine_json",)),
	("cloudevents_relay_ratio", "relay throughput, CloudEvents headers on ÷ off", "×", 0.9, "min",
		"ecosystem", ("relay_cloudevents_on_to_off",)),
	("tls_relay_ratio", "relay throughput, TLS + SASL/SCRAM + ACLs ÷ plaintext", "×", 0.9, "min", "cluster",
		("tls_relay_ratio",)),
]  # fmt: skip


def lookup(data: dict, path: tuple[str, ...]):
	for part in path:
		if not isinstance(data, dict) or part not in data:
			return None
		data = data[part]
	return data


def ratios(sources: dict) -> dict:
	"""Each throughput against its ceiling measured on the same machine (ceilings.json)."""
	ceilings = sources["ceilings"]
	pairs = {
		"ingest_to_insert_ceiling": (("consumer", "ingest_messages_per_second"), "message_log_insert_rows_per_second"),
		"relay_to_ceiling": (("producer", "relay", "messages_per_second"), "relay_ceiling_per_second"),
		"sync_to_doc_insert": (("sites", "sync", "docs_per_second"), "frappe_doc_insert_per_second"),
	}  # fmt: skip
	out = {}
	for key, ((source, *path), ceiling) in pairs.items():
		value, bound = lookup(sources[source], tuple(path)), ceilings.get(ceiling)
		out[key] = value / bound if value and bound else None
	return out


def this_run(sources: dict) -> str | None:
	"""The run the summary is of: SPINE_BENCH_RUN, or the newest run id among the result files."""
	if os.environ.get("SPINE_BENCH_RUN"):
		return os.environ["SPINE_BENCH_RUN"]
	stamped = [(s.get("when") or "", s["run"]) for s in sources.values() if s.get("run")]
	return max(stamped)[1] if stamped else None


def _shown(value) -> str:
	return "not measured" if value is None else (f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}")


def _before() -> dict | None:
	"""The measures of an earlier summary (``SPINE_BENCH_BEFORE``: its summary.json), shown beside
	this run's; None when not asked for."""
	path = os.environ.get("SPINE_BENCH_BEFORE")
	if not path:
		return None
	return json.loads(Path(path).read_text())["measures"]


def main() -> None:
	sources = {}
	for name in (
		"producer",
		"consumer",
		"pipeline",
		"sites",
		"trickle",
		"ceilings",
		"metrics",
		"benchwide",
		"signing",
		"cluster",
		"membership",
		"ecosystem",
	):
		path = RESULTS / f"{name}.json"
		sources[name] = json.loads(path.read_text()) if path.exists() else {}
	run = this_run(sources)
	stale = sorted(name for name, data in sources.items() if data and data.get("run") != run)
	for name in stale:  # another run's figures never stand in for this run's
		sources[name] = {}
	sources["derived"] = ratios(sources)
	before = _before()
	table, out = [], {}
	for key, label, unit, goal, kind, source, path in ROWS:
		value = lookup(sources[source], path)
		# a figure this run did not measure counts as missed: a goal is met only by a measurement
		met = False if value is None else (value <= goal if kind == "max" else value >= goal)
		out[key] = {"label": label, "unit": unit, "value": value, "goal": goal, "goal_is": kind, "met": met,
			"source": f"benchmarks/results/{source}.json"}  # fmt: skip
		row = [label, f"{_shown(value)} {unit}", f"{'≤' if kind == 'max' else '≥'} {goal:,} {unit}",
			"met" if met else ("MISSED (not measured)" if value is None else "MISSED")]  # fmt: skip
		if before is not None:
			row.insert(1, f"{_shown((before.get(key) or {}).get('value'))} {unit}")
		table.append(tuple(row))
	head = (
		("measure", "before", "value", "goal", "") if before is not None else ("measure", "value", "goal", "")
	)
	widths = [max(len(row[i]) for row in [head, *table]) for i in range(len(head))]
	print(
		"\nSpine performance against its goals"
		+ (f" (before: {os.environ['SPINE_BENCH_BEFORE']})" if before is not None else "")
	)
	for row in [head, tuple("-" * w for w in widths), *table]:
		print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
	machine = next((s.get("machine") for s in sources.values() if s.get("machine")), None)
	brokers = sorted({s["broker"] for s in sources.values() if isinstance(s, dict) and s.get("broker")})
	print("\nbrokers: " + ("; ".join(brokers) or "not recorded"))
	missed = [k for k, m in out.items() if not m["met"]]
	print(
		f"\nrun: {run or 'no run id'}" + (f"; left out, from other runs: {', '.join(stale)}" if stale else "")
	)
	RESULTS.mkdir(parents=True, exist_ok=True)
	(RESULTS / "summary.json").write_text(
		json.dumps(
			{
				"run": run,
				"machine": machine,
				"brokers": brokers,
				"measures": out,
				"missed": missed,
				"other_runs_left_out": stale,
			},
			indent=2,
		)  # fmt: skip
	)
	print(f"\nwritten: {RESULTS / 'summary.json'}")
	print(f"{len(missed)} of {len(out)} goals missed" if missed else "every goal met")
	sys.exit(1 if missed else 0)


if __name__ == "__main__":
	main()
