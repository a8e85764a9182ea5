"""Spine's bench commands. Each command parses options and calls plain code; nothing else here.

Frappe finds them through the module-level ``commands`` list.
"""

import click
from frappe.commands import get_site, pass_context

# --- producer commands ---


@click.command("spine-backfill")
@click.argument("doctype")
@click.option(
	"--filters",
	default=None,
	help='JSON filters, e.g. \'{"disabled": 0}\' or \'[["modified", ">", "2026-01-01"]]\'',
)
@click.option("--batch-size", type=int, default=500, show_default=True)
@click.option(
	"--event", default="on_update", show_default=True, help="Header.Event of the backfilled messages"
)
@pass_context
def spine_backfill(context, doctype: str, filters: str | None, batch_size: int, event: str) -> None:
	"""Publish existing documents of a configured DocType (first sync of a new consumer)."""
	import json

	import frappe

	from spine.producer.backfill import backfill

	site = get_site(context)
	frappe.init(site=site)
	frappe.connect()
	try:
		frappe.set_user("Administrator")
		parsed = json.loads(filters) if filters else None
		done = backfill(
			doctype,
			parsed,
			batch_size=batch_size,
			event=event,
			progress=lambda n, total: click.echo(f"{doctype}: {n:,} of {total:,} captured"),
		)
		click.echo(f"{doctype}: {done:,} documents captured; the relay publishes them now")
	finally:
		frappe.destroy()


@click.command("spine-relay")
@pass_context
def spine_relay(context) -> None:
	"""Publish this site's captured events the moment their transaction commits (long-running)."""
	from spine import logs
	from spine.producer.relay import serve

	logs.to_terminal()
	serve(get_site(context))


# --- consumer commands ---


@click.command("eventdispatcher")
@click.option("--queue", required=True, help="RQ queue the jsonworkers read (same value for both commands)")
@click.option("--numworkers", type=int, default=1, show_default=True, help="consumer processes in the group")
@pass_context
def eventdispatcher(context, queue: str, numworkers: int) -> None:
	"""Read the topics of Spine Consumer Config and hand the messages to the jsonworkers' queue."""
	from spine.consumer.processes import run_dispatchers

	run_dispatchers(get_site(context), queue, numworkers)


@click.command("jsonworker")
@click.option("--queue", required=True, help="RQ queue the eventdispatcher writes to")
@click.option("--numworkers", type=int, default=1, show_default=True, help="worker processes")
@click.option("--burst", is_flag=True, help="exit once the queue is empty")
@pass_context
def jsonworker(context, queue: str, numworkers: int, burst: bool) -> None:
	"""Store dispatched messages in Message Log and process them."""
	from spine.consumer.processes import run_workers

	run_workers(get_site(context), queue, numworkers, burst=burst)


# --- operations commands ---


@click.command("spine-broker")
@click.option("--port", type=int, default=9092, show_default=True)
@click.option(
	"--data-dir", default=None, help="where the broker keeps its data (default: a temporary folder)"
)
@pass_context
def spine_broker(context, port: int, data_dir: str | None) -> None:
	"""Run a local Kafka-protocol broker for development (needs: pip install noida-db); Ctrl-C stops it."""
	import json
	import signal

	from spine.kafka.devbroker import BrokerStartError, LocalBroker

	try:
		broker = LocalBroker.start(data_dir, port=port)
	except BrokerStartError as e:
		raise click.ClickException(str(e)) from None
	site = context.sites[0] if context.sites else "mysite.local"
	block = json.dumps({"bootstrap.servers": broker.bootstrap_servers, "client.id": site})
	click.echo(f"Kafka-protocol broker listening on {broker.bootstrap_servers} (data: {broker.data_dir})")
	click.echo(f"Point a site at it:\n  bench --site {site} set-config -p kafka '{block}'")
	click.echo("Ctrl-C stops it.")
	signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C
	try:
		broker.process.wait()
	except KeyboardInterrupt:
		pass
	finally:
		broker.stop()


@click.command("spine-processes")
@click.option("--queue", default="kafka_events", show_default=True)
@click.option("--numworkers", type=int, default=2, show_default=True)
@click.option(
	"--supervisor", "as_supervisor", is_flag=True, help="print a supervisor config instead of Procfile lines"
)
@click.option("--write", is_flag=True, help="append the Procfile lines to the bench's Procfile")
@pass_context
def spine_processes(context, queue: str, numworkers: int, as_supervisor: bool, write: bool) -> None:
	"""Procfile or supervisor entries for this site's eventdispatcher and jsonworker."""
	import getpass
	import os
	from pathlib import Path

	from spine.config.procfile import add_to_procfile, procfile_lines, supervisor_conf

	site = get_site(context)
	bench_path = os.path.abspath(os.path.join(os.getcwd(), ".."))  # bench runs commands from sites/
	if as_supervisor:
		click.echo(supervisor_conf(site, queue, numworkers, bench_path, getpass.getuser()))
		return
	lines = procfile_lines(site, queue, numworkers)
	if write:
		added = add_to_procfile(Path(bench_path) / "Procfile", lines)
		click.echo(f"Procfile: added {len(added)} line(s)" + ("".join(f"\n  {a}" for a in added)))
	else:
		click.echo("\n".join(lines))


@click.command("spine-status")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON (see README)")
@click.option("--max-age", type=int, default=600, show_default=True, help="seconds a pending entry may wait")
@click.option("--no-lag", is_flag=True, help="skip asking the broker for consumer lag")
@pass_context
def spine_status(context, as_json: bool, max_age: int, no_lag: bool) -> None:
	"""Backlog, counts by status, oldest pending age, consumer lag. Exit code 1 when something is stuck."""
	import json

	import frappe

	from spine.desk.status import collect, render

	frappe.init(site=get_site(context))
	frappe.connect()
	try:
		report = collect(max_age_seconds=max_age, with_lag=not no_lag)
	finally:
		frappe.destroy()
	click.echo(json.dumps(report, indent=1, default=str) if as_json else render(report))
	if report["problems"]:
		raise SystemExit(1)


commands = [
	spine_backfill,
	spine_relay,
	eventdispatcher,
	jsonworker,
	spine_broker,
	spine_processes,
	spine_status,
]
