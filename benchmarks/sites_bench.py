"""Between two sites of one bench, through the real Procfile processes of both (spine-relay,
eventdispatcher, jsonworker) and one local broker:

* document sync: a simple master inserted on site A, mirrored on site B by a Spine Sync Rule;
  documents per second from A's commit until the last one is on B, and B's own apply rate;
* request/reply: ``spine.request`` from A answered by B's Spine Consumer Config row, one request
  at a time on an idle pipeline; median and p95 of the round trip.

    SPINE_BENCH=/path/to/frappe-bench SPINE_SITE=a.local SPINE_SITE2=b.local benchmarks/run.sh sites
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

from common import (
	configs,
	connect_site,
	local_broker,
	site_kafka,
	start_process,
	stop_process,
	summary,
	wait_until,
	write_results,
)

from tests.bench.helpers import on_site

MASTER = "Spine Bench Master"


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--documents", type=int, default=2000, help="masters synced A → B")
	parser.add_argument("--requests", type=int, default=100, help="requests timed one at a time")
	parser.add_argument("--workers", type=int, default=2, help="jsonworkers on site B")
	parser.add_argument("--out", default="benchmarks/results/sites.json")
	args = parser.parse_args()
	out = str((Path.cwd() / args.out).resolve())
	site_b = os.environ.get("SPINE_SITE2")
	if not site_b:
		sys.exit("set SPINE_SITE2 to a second test site of the same bench (site B; benchmarks commit data)")

	frappe = connect_site()
	site_a = frappe.local.site
	import spine

	run = uuid.uuid4().hex[:6]
	sync_topic, ask_topic, group = f"bench-sync-{run}", f"bench-ask-{run}", f"bench-{run}"
	ensure_master(frappe)
	with on_site(site_b):
		ensure_master(frappe)
	procs = []
	try:
		with (
			local_broker() as bootstrap,
			site_kafka(bootstrap, **{"group.id": f"{group}-a"}),
			configs(frappe, [{"document_type": MASTER, "topic": sync_topic, "on_insert": 1}], None),
			site_b_setup(frappe, site_b, bootstrap, group, sync_topic, ask_topic),
		):
			queue = f"bench-{run}"
			procs = [
				start_process("spine-relay"),
				start_process("eventdispatcher", "--queue", queue),
				start_process("jsonworker", "--queue", queue),
				start_process("spine-relay", site=site_b),
				start_process("eventdispatcher", "--queue", queue, site=site_b),
				start_process("jsonworker", "--queue", queue, "--numworkers", str(args.workers), site=site_b),
			]

			def log_of(proc) -> str:
				return Path(proc.log_path).read_text(errors="replace")

			for proc in (procs[1], procs[4]):
				wait_until(lambda p=proc: "assigned" in log_of(p), 60, "a dispatcher's partition assignment")

			# request/reply, idle: warm up (first connections, first jobs), then one at a time
			def ask() -> float:
				started = time.perf_counter()
				spine.request(ask_topic, {"n": 1}, timeout=10)
				return (time.perf_counter() - started) * 1000

			wait_until(lambda: _answers(spine, ask_topic), 120, "a first reply from site B", interval=0.5)
			for _ in range(5):
				ask()
			latencies = []
			for _ in range(args.requests):
				latencies.append(ask())
				time.sleep(0.2)
			frappe.db.commit()

			# document sync: N masters committed on A at once, until the last one is on B (after a
			# warm-up of 50: a fresh worker imports what inserting a document needs, once)
			def insert_masters(prefix: str, count: int) -> None:
				for i in range(count):
					frappe.get_doc({"doctype": MASTER, "__newname": f"{prefix}-{i:05d}", "code": f"{prefix}-{i:05d}",
						"title": f"bench master {i}", "price": i}).insert()  # fmt: skip
				frappe.db.commit()

			def on_b(prefix: str) -> int:
				with on_site(site_b):
					return frappe.db.count(MASTER, {"name": ("like", f"{prefix}-%")})

			insert_masters(f"SB{run}W", 50)
			wait_until(lambda: on_b(f"SB{run}W") >= 50, 120, "the warm-up masters on site B", interval=0.2)
			prefix = f"SB{run}"
			insert_masters(prefix, args.documents)
			committed = time.perf_counter()
			wait_until(lambda: on_b(prefix) >= args.documents, 600, "every master on site B", interval=0.2)
			end_to_end = time.perf_counter() - committed
			with on_site(site_b):
				first, last, failed = frappe.db.sql(
					"SELECT MIN(creation), MAX(done_at), SUM(status != 'Processed') FROM `tabMessage Log` "
					"WHERE direction = 'Inbound' AND topic = %s AND document_name LIKE %s",
					(sync_topic, f"{prefix}-%"),
				)[0]
			apply_seconds = (last - first).total_seconds()
	finally:
		for proc in procs:
			stop_process(proc)
		frappe.db.rollback()
		for site in (site_a, site_b):
			with on_site(site):
				frappe.db.delete(MASTER, {"name": ("like", f"SB{run}%")})
				frappe.db.delete("Spine Document Map", {"remote_name": ("like", f"SB{run}%")})

	rpc = summary(latencies)
	data = {
		"sites": [site_a, site_b],
		"sync": {
			"documents": args.documents,
			"seconds_after_commit": end_to_end,
			"docs_per_second": args.documents / end_to_end,
			"apply_seconds_on_b": apply_seconds,
			"apply_docs_per_second_on_b": args.documents / apply_seconds if apply_seconds else None,
			"not_processed_on_b": int(failed or 0),
			"jsonworkers_on_b": args.workers,
		},
		"request_reply_ms": rpc,
	}
	write_results(
		out,
		"Between two sites: document sync and request/reply",
		[
			(f"sync: {args.documents:,} masters committed on A → all on B", f"{end_to_end:.2f} s"),
			("sync: documents per second A → B", f"{data['sync']['docs_per_second']:,.0f} docs/s"),
			("sync: B's apply rate (first stored → last applied)",
				f"{data['sync']['apply_docs_per_second_on_b'] or 0:,.0f} docs/s ({args.workers} jsonworkers)"),
			(f"request → reply, idle ({rpc['n']} requests): median", f"{rpc['median']:.1f} ms"),
			("request → reply: p95", f"{rpc['p95']:.1f} ms"),
		],
		data,
	)  # fmt: skip


def _answers(spine, topic: str) -> bool:
	try:
		return bool(spine.request(topic, {"warm": 1}, timeout=5))
	except spine.RequestTimeout:
		return False


def ensure_master(frappe) -> None:
	"""A simple master DocType for the sync benchmark (on the current site), made once."""
	if not frappe.db.exists("DocType", MASTER):
		frappe.get_doc({
			"doctype": "DocType", "name": MASTER, "module": "Spine Adapter", "custom": 1, "autoname": "prompt",
			"fields": [{"fieldname": "code", "fieldtype": "Data", "label": "Code"},
				{"fieldname": "title", "fieldtype": "Data", "label": "Title"},
				{"fieldname": "price", "fieldtype": "Float", "label": "Price"}],
			"permissions": [{"role": "System Manager", "read": 1, "write": 1, "create": 1, "delete": 1}],
		}).insert(ignore_permissions=True)  # fmt: skip
		frappe.db.commit()


@contextmanager
def site_b_setup(frappe, site_b: str, bootstrap: str, group: str, sync_topic: str, ask_topic: str):
	"""Site B on the broker, with a sync rule for the master and a responder; put back afterwards.
	The block itself runs on site A."""
	stack = ExitStack()
	with on_site(site_b):
		stack.enter_context(site_kafka(bootstrap, **{"group.id": f"{group}-b"}))
		stack.enter_context(configs(frappe, None,
			[{"topic": ask_topic, "document_type": "Spine Request", "event_handler": "spine.demo.answer"}],
			enabled=1))  # fmt: skip
		rule = frappe.get_doc({"doctype": "Spine Sync Rule", "title": f"bench {sync_topic}",
			"topic": sync_topic, "source_doctype": MASTER}).insert(ignore_permissions=True)  # fmt: skip
	try:
		yield
	finally:
		with on_site(site_b):
			frappe.db.delete("Spine Document Map", {"rule": rule.name})
			frappe.delete_doc("Spine Sync Rule", rule.name, ignore_permissions=True)
			frappe.db.commit()  # before the configs are put back, which starts with a rollback
			stack.close()


if __name__ == "__main__":
	main()
