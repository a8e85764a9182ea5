"""Production traffic: documents saved one commit at a time, through the real Procfile processes
(spine-relay, eventdispatcher, jsonworker --numworkers 2), one site consuming its own topic.

- burst: N saves, each its own transaction, as fast as one process saves → how long after the
  last save the last message is handled;
- paced: saves at a fixed rate (from saver processes of their own) for a while, the backlog
  (captured minus handled) sampled every second; a rate is kept up with when the backlog at the end is
  under one second of traffic; the consumer's CPU per message (dispatcher + jsonworkers) is read
  from /proc;
- latency: save → handler median and p95 while saves trickle in at a fixed rate.

    SPINE_BENCH=/path/to/frappe-bench SPINE_SITE=test.local benchmarks/run.sh trickle
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import (
	connect_site,
	last_log_name,
	procfile_pipeline,
	service_pids,
	services_cpu,
	summary,
	tree_cpu_seconds,
	wait_until,
	write_results,
)

DEMO = "spine.demo"
SELF = str(Path(__file__).resolve())


def save_loop(rate: float, count: int, seconds: float, tag: str, out: str) -> None:
	"""Saver process: ToDo saves, one commit each, at ``rate`` per second (0: as fast as possible);
	writes ``{"saves": [[name, commit unix time], ...], "cpu_seconds": ...}`` to ``out``."""
	frappe = connect_site()
	done = []
	cpu = time.process_time()
	started = time.perf_counter()
	i = 0
	while (count and i < count) or (seconds and time.perf_counter() - started < seconds):
		if rate:
			due = started + i / rate
			if (wait := due - time.perf_counter()) > 0:
				time.sleep(wait)
		todo = frappe.get_doc({"doctype": "ToDo", "description": f"{tag} {i}"}).insert()
		frappe.db.commit()
		done.append((todo.name, time.time()))
		i += 1
	Path(out).write_text(json.dumps({"saves": done, "cpu_seconds": time.process_time() - cpu}))
	frappe.destroy()


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--burst", type=int, default=1000, help="saves as fast as one process saves")
	parser.add_argument(
		"--rounds", type=int, default=3, help="burst rounds, each beside one with ToDo not configured"
	)
	parser.add_argument("--rates", default="25,50,100,200,500", help="paced rates to try (saves/s)")
	parser.add_argument("--seconds", type=float, default=30, help="how long each paced rate runs")
	parser.add_argument("--latency-rate", type=float, default=200)
	parser.add_argument("--workers", type=int, default=2)
	parser.add_argument("--out", default="benchmarks/results/trickle.json")
	parser.add_argument(
		"--save", nargs=5, metavar=("RATE", "COUNT", "SECONDS", "TAG", "OUT"), help=argparse.SUPPRESS
	)
	args = parser.parse_args()
	if args.save:
		rate, count, seconds, tag, out = args.save
		save_loop(float(rate), int(count), float(seconds), tag, out)
		return
	out = str((Path.cwd() / args.out).resolve())
	frappe = connect_site()

	from spine import compat
	from spine.demo import CALLS_KEY

	cache = compat.cache()
	run = uuid.uuid4().hex[:6]
	topic = f"bench-trickle-{run}"
	procs: list[subprocess.Popen] = []
	tmp = Path(tempfile.mkdtemp(prefix="spine-trickle-"))

	def savers(rate: float, count: int, seconds: float, label: str) -> tuple[list, list[Path]]:
		"""Saver processes (one per 150 saves/s: one process saves ~200/s here) and the files each
		writes its (name, commit time) pairs to."""
		n = max(1, int(-(-rate // 150))) if rate else 1
		files = [tmp / f"{label}-{i}.json" for i in range(n)]
		runs = [
			subprocess.Popen(
				[
					sys.executable,
					SELF,
					"--save",
					str(rate / n),
					str(count // n),
					str(seconds),
					f"bench trickle {run} {label} {i}",
					str(f),
				],
				cwd=os.getcwd(),
				env=os.environ,
			)  # fmt: skip
			for i, f in enumerate(files)
		]
		return runs, files

	def saver_cpu_ms(files: list[Path], saves: int) -> float:
		"""CPU per save of the saver processes themselves (Frappe's insert and Spine's capture)."""
		return sum(json.loads(f.read_text())["cpu_seconds"] for f in files) * 1000 / max(saves, 1)

	def handled() -> dict[str, float]:
		return {
			mid: float(when) for mid, when in (e.decode().split() for e in cache.lrange(CALLS_KEY, 0, -1))
		}

	def message_ids() -> dict[str, str]:
		frappe.db.rollback()
		rows = frappe.db.sql(
			"SELECT document_name, message_id FROM `tabMessage Log` WHERE name > %s AND direction = 'Outbound' "
			"AND topic = %s",
			(after, topic),
		)
		return dict(rows)

	def captured() -> int:
		frappe.db.rollback()
		return frappe.db.sql(
			"SELECT COUNT(*) FROM `tabMessage Log` WHERE name > %s AND direction = 'Outbound' AND topic = %s",
			(after, topic),
		)[0][0]

	def cpu() -> dict[str, float]:
		return {
			name: tree_cpu_seconds(p.pid)
			for name, p in zip(("relay", "jsonworkers", "dispatcher"), procs, strict=True)
		}

	def cpu_ms_per_message(before: dict[str, float], messages: int) -> dict[str, float]:
		"""CPU per message of each process group since ``before`` (the broker, MariaDB and Redis not
		counted); "consumer" is the dispatcher and the jsonworkers."""
		used = {k: (v - before[k]) * 1000 / max(messages, 1) for k, v in cpu().items()}
		return {**used, "consumer": used["dispatcher"] + used["jsonworkers"]}

	def spine_ms(used: dict[str, float], hook_ms: float) -> float:
		"""All the CPU Spine spends on a message: relay, dispatcher and jsonworkers, and what its capture
		hook adds to the save itself."""
		return used["relay"] + used["consumer"] + hook_ms

	def set_routes(rows: list[dict]) -> None:
		doc = frappe.get_single("Spine Producer Config")
		doc.set("configs", rows)
		doc.save(ignore_permissions=True)
		frappe.db.commit()

	def paced(rate: float, seconds: float, label: str) -> dict:
		"""Saves at ``rate`` for ``seconds``; backlog sampled every second."""
		cache.delete_value(CALLS_KEY)
		base = captured()
		cpu0 = cpu()
		runs, files = savers(rate, 0, seconds, label)
		samples = []
		while any(r.poll() is None for r in runs):
			time.sleep(1)
			samples.append(captured() - base - cache.llen(CALLS_KEY))
		saved = [s for f in files for s in json.loads(f.read_text())["saves"]]
		end_backlog = samples[-1] if samples else 0
		wait_until(lambda: cache.llen(CALLS_KEY) >= len(saved), 600, f"all {len(saved)} messages handled")
		used = cpu_ms_per_message(cpu0, len(saved))
		calls = handled()
		ids = message_ids()
		lat = [(calls[ids[n]] - t) * 1000 for n, t in saved if n in ids and ids[n] in calls]
		achieved = len(saved) / seconds
		saver_ms = saver_cpu_ms(files, len(saved))
		return {
			"rate_asked": rate,
			"rate_saved": achieved,
			"saved": len(saved),
			"backlog_each_second": samples,
			"backlog_at_end": end_backlog,
			"saver_cpu_ms_per_save": saver_ms,
			"kept_up": end_backlog <= max(achieved, 1),
			"handled_after_last_save_s": max(calls.values()) - max(t for _, t in saved) if calls else None,
			"consumer_cpu_ms_per_message": used["consumer"],
			"cpu_ms_per_message": used,
			"spine_cpu_to_save_ratio": spine_ms(used, results["capture_hook_cpu_ms"])
			/ results["save_alone_cpu_ms"],
			"save_to_handler_ms": summary(lat) if lat else None,
		}

	producer_rows = [{"document_type": "ToDo", "topic": topic, "on_update": 1}]
	consumer_rows = [{"topic": topic, "document_type": "ToDo", "event_handler": f"{DEMO}.record_call"}]
	results: dict = {}
	try:
		with procfile_pipeline(frappe, run, producer_rows, consumer_rows, [topic], args.workers) as (
			_,
			started,
		):
			procs.extend(started)
			after = last_log_name(frappe)
			results["capture_hook_cpu_ms"], results["save_alone_cpu_ms"] = (
				0.0,
				float("nan"),
			)  # set by the burst
			results["warm_up"] = paced(20, 3, "warm")

			# burst: as fast as one process saves, each save its own commit; in rounds that alternate with
			# the same saves while ToDo is not configured, so what the capture hook adds to the save (and
			# the save's own CPU without Spine) are measured in the same minutes, not assumed
			on, off, services = [], [], service_pids()
			for round_no in range(2 * args.rounds):
				configured = round_no % 2 == 0
				set_routes(producer_rows if configured else [])
				cache.delete_value(CALLS_KEY)
				cpu0, svc0 = cpu(), services_cpu(services)
				runs, files = savers(0, args.burst // args.rounds, 0, f"burst-{round_no}")
				for r in runs:
					r.wait()
				saved = [s for f in files for s in json.loads(f.read_text())["saves"]]
				last_save = max(t for _, t in saved)
				if configured:
					expected = len(saved)
					wait_until(lambda: cache.llen(CALLS_KEY) >= expected, 600, "the burst handled")
				else:
					time.sleep(1)  # nothing to carry: Spine's processes idle meanwhile
				calls = handled()
				(on if configured else off).append({
					"saves": len(saved),
					"saves_per_second": len(saved) / max(last_save - min(t for _, t in saved), 1e-9),
					"handled_after_last_save_s": max(calls.values()) - last_save if calls else None,
					"cpu_ms_per_message": cpu_ms_per_message(cpu0, len(saved)),
					"services_cpu_ms_per_save": {k: (v - svc0[k]) * 1000 / len(saved)
						for k, v in services_cpu(services).items()},
					"saver_cpu_ms_per_save": saver_cpu_ms(files, len(saved)),
				})  # fmt: skip
			set_routes(producer_rows)
			save_alone = statistics.median(r["saver_cpu_ms_per_save"] for r in off)
			hook = statistics.median(r["saver_cpu_ms_per_save"] for r in on) - save_alone
			used = {
				k: statistics.median(r["cpu_ms_per_message"][k] for r in on)
				for k in on[0]["cpu_ms_per_message"]
			}
			results["save_alone_cpu_ms"] = save_alone
			results["capture_hook_cpu_ms"] = hook
			results["burst"] = {
				"rounds_configured": on,
				"rounds_not_configured": off,
				"saves": sum(r["saves"] for r in on),
				"saves_per_second": statistics.median(r["saves_per_second"] for r in on),
				"handled_after_last_save_s": statistics.median(r["handled_after_last_save_s"] for r in on),
				"cpu_ms_per_message": used,
				"saver_cpu_ms_per_save": save_alone + hook,
				"save_alone_cpu_ms": save_alone,
				"capture_hook_cpu_ms": hook,
				"spine_cpu_ms_per_message": spine_ms(used, hook),
				"spine_cpu_to_save_ratio": spine_ms(used, hook) / save_alone,
				"services_cpu_ms_per_save": {
					k: {"configured": statistics.median(r["services_cpu_ms_per_save"][k] for r in on),
						"not configured": statistics.median(r["services_cpu_ms_per_save"][k] for r in off)}
					for k in services
				},
			}  # fmt: skip
			time.sleep(2)
			results["latency"] = paced(args.latency_rate, args.seconds, "latency")
			results["paced"] = [paced(float(r), args.seconds, f"paced-{r}") for r in args.rates.split(",")]
			frappe.db.delete("ToDo", {"description": ("like", f"bench trickle {run} %")})
			frappe.db.commit()
	finally:
		frappe.destroy()

	kept = [p["rate_saved"] for p in results["paced"] if p["kept_up"]]
	results["sustained_kept_up_per_second"] = max(kept) if kept else 0
	# "at every rate": the burst and each paced rate the consumers kept up with (a rate that fell
	# behind is measured mid-backlog, where batching makes a message cheaper than it is in use)
	results["spine_cpu_to_save_ratio_worst"] = max(
		[results["burst"]["spine_cpu_to_save_ratio"]]
		+ [p["spine_cpu_to_save_ratio"] for p in results["paced"] if p["kept_up"]]
	)
	# the figures the goals name per rate (25 saves/s: what a busy office sends), by the rate asked
	results["by_rate"] = {
		f"{p['rate_asked']:.0f}": {
			"spine_cpu_to_save_ratio": p["spine_cpu_to_save_ratio"],
			"consumer_cpu_ms_per_message": p["consumer_cpu_ms_per_message"],
			"kept_up": p["kept_up"],
		}
		for p in results["paced"]
	}
	results["handled_after_last_save_s_by_rate"] = {
		f"{p['rate_asked']:.0f}": p["handled_after_last_save_s"] for p in results["paced"]
	}
	lat = results["latency"]["save_to_handler_ms"]
	rows = [
		(f"{results['burst']['saves']:,} saves, one commit each ({results['burst']['saves_per_second']:.0f}/s) → "
			"all handled, after the last save (s)", f"{results['burst']['handled_after_last_save_s']:.2f}"),
		("  CPU per message in the burst: dispatcher / jsonworkers / relay (ms)",
			" / ".join(f"{results['burst']['cpu_ms_per_message'][k]:.2f}" for k in ("dispatcher", "jsonworkers", "relay"))),
		("  the save alone (ToDo not configured, alternated rounds) / what Spine's capture hook adds (ms CPU)",
			f"{results['save_alone_cpu_ms']:.2f} / {results['capture_hook_cpu_ms']:.2f}"),
		("  Spine's CPU per message (relay + dispatcher + jsonworkers + capture hook) ÷ the save alone",
			f"{results['burst']['spine_cpu_ms_per_message']:.2f} ms; {results['burst']['spine_cpu_to_save_ratio']:.2f}×"),
		("  MariaDB / Redis / broker CPU per save, configured vs not (ms)",
			" / ".join(f"{v['configured']:.2f} vs {v['not configured']:.2f}"
				for v in results["burst"]["services_cpu_ms_per_save"].values())),
		(f"save → handler, {args.latency_rate:.0f} saves/s asked ({results['latency']['rate_saved']:.0f}/s saved), "
			"median / p95 (ms)", f"{lat['median']:.1f} / {lat['p95']:.1f}"),
		*(
			(f"paced {p['rate_asked']:.0f}/s for {args.seconds:.0f}s (saved {p['rate_saved']:.0f}/s): backlog at end, "
				"handled after the last save, consumer / saver CPU ms per message, Spine ÷ save CPU, "
				"save → handler median",
				f"{p['backlog_at_end']} {'kept up' if p['kept_up'] else 'FELL BEHIND'}, "
				f"{p['handled_after_last_save_s']:.2f} s, "
				f"{p['consumer_cpu_ms_per_message']:.2f} / {p['saver_cpu_ms_per_save']:.2f}, "
				f"{p['spine_cpu_to_save_ratio']:.2f}×, "
				f"{(p['save_to_handler_ms'] or {}).get('median', float('nan')):.0f} ms")
			for p in results["paced"]
		),
		("highest paced rate kept up with (saves/s)", f"{results['sustained_kept_up_per_second']:.0f}"),
		("Spine's CPU ÷ the save's, worst of the burst and the rates kept up with",
			f"{results['spine_cpu_to_save_ratio_worst']:.2f}×"),
	]  # fmt: skip
	write_results(out, "Spine trickle: single-commit saves through the Procfile processes", rows, results)


if __name__ == "__main__":
	main()
