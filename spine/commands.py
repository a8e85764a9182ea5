"""Spine's bench commands. Each command parses options and calls plain code; nothing else here.

Frappe finds them through the module-level ``commands`` list. Spine's own errors (a bad kafka
block, a broker that does not answer, a bad option) end a command with one line on stderr and
exit code 1; the traceback goes to the bench's logs/spine.log.
"""

import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from frappe.commands import get_site, pass_context

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _friendly_errors(command: Callable) -> Callable:
	"""Turn Spine's errors and Frappe validation messages into click's one-line error exit."""

	@functools.wraps(command)
	def run(*args, **kwargs):
		import frappe

		from spine import logs
		from spine.errors import SpineError

		try:
			return command(*args, **kwargs)
		except (SpineError, frappe.ValidationError) as e:
			logs.logger("spine.commands").error(
				"%s failed: %s", command.__name__, e, exc_info=True, extra=logs.FILE_ONLY
			)
			message = frappe.utils.strip_html(str(e)) if isinstance(e, frappe.ValidationError) else str(e)
			raise click.ClickException(message) from None

	return run


@contextmanager
def _on_site(context) -> Iterator[str]:
	"""The command's site, initialised and connected as Administrator; torn down afterwards."""
	import frappe

	site = get_site(context)
	frappe.init(site=site)
	frappe.connect()
	try:
		frappe.set_user("Administrator")
		yield site
	finally:
		frappe.destroy()


def _named_sites(context) -> tuple[str, ...]:
	"""The sites ``--site`` (or ``FRAPPE_SITE``) named; none for a bench-wide command: without
	``--site``, or with ``--site all`` (every site, those added later too). A default site set with
	``bench use`` does not count: Spine's long-running commands then serve the whole bench."""
	import os

	ctx = click.get_current_context()
	while ctx is not None and "site" not in ctx.params:
		ctx = ctx.parent
	named = (ctx.params.get("site") if ctx else None) or os.environ.get("FRAPPE_SITE")
	if not named or named == "all":
		return ()
	return tuple(context.sites)


def _queue(_ctx, _param, value: str) -> str:
	if not _QUEUE_NAME.match(value or ""):
		raise click.BadParameter(f"{value!r}: use letters, digits, '.', '_' and '-' (e.g. kafka_events)")
	return value


def _json(_ctx, _param, value: str | None):
	import json

	if value is None:
		return None
	try:
		return json.loads(value)
	except ValueError as e:
		raise click.BadParameter(f"not JSON ({e}); e.g. '{{\"disabled\": 0}}'") from None


_numworkers = click.option(
	"--numworkers", type=click.IntRange(min=1), default=1, show_default=True, help="processes to run"
)
_metrics_port = click.option(
	"--metrics-port",
	type=click.IntRange(1, 65535),
	default=None,
	help="serve Prometheus metrics on this port (/metrics); default: the kafka block's spine.metrics.port "
	"(+1 for eventdispatcher, +2 for jsonworker), else off",
)
_queue_option = click.option(
	"--queue",
	required=True,
	callback=_queue,
	help="RQ queue between eventdispatcher and jsonworker (the same value for both commands)",
)

# --- producer commands ---


@click.command("spine-backfill")
@click.argument("doctype")
@click.option(
	"--filters",
	default=None,
	callback=_json,
	help='JSON filters, e.g. \'{"disabled": 0}\' or \'[["modified", ">", "2026-01-01"]]\'',
)
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option(
	"--event",
	default="on_update",
	show_default=True,
	help='Header.Event of the backfilled messages; "by docstatus": drafts as on_update, submitted '
	"documents as on_submit, cancelled ones as on_submit then on_cancel (what a Spine Sync Rule needs)",
)
@click.option("--topic", default=None, help="only the Spine Producer Config rows publishing to this topic")
@pass_context
@_friendly_errors
def spine_backfill(context, doctype: str, filters, batch_size: int, event: str, topic: str | None) -> None:
	"""Publish existing documents of a configured DocType (first sync of a new consumer)."""
	import sys

	from spine.producer.backfill import backfill

	with _on_site(context):
		if sys.stdout.isatty():
			with click.progressbar(length=0, label=f"{doctype}: capturing") as bar:

				def progress(n: int, total: int) -> None:
					bar.length = total
					bar.update(n - bar.pos)

				done = backfill(
					doctype, filters, batch_size=batch_size, event=event, topic=topic, progress=progress
				)
		else:
			done = backfill(
				doctype,
				filters,
				batch_size=batch_size,
				event=event,
				topic=topic,
				progress=lambda n, total: click.echo(f"{doctype}: {n:,} of {total:,} captured"),
			)
		click.echo(f"{doctype}: {done:,} documents captured; the relay publishes them now")


@click.command("spine-schema")
@click.argument("doctype", required=False)
@click.option("--all", "every", is_flag=True, help="every DocType of Spine Producer Config")
@click.option("--topic", default=None, help="only routes to this topic")
@click.option("--publish", is_flag=True, help="also put schemas not published yet on spine.schemas")
@pass_context
@_friendly_errors
def spine_schema(context, doctype: str | None, every: bool, topic: str | None, publish: bool) -> None:
	"""Print the JSON Schema (and version) of what each producer route publishes."""
	import json

	from spine.desk import schemas

	if not doctype and not every:
		raise click.UsageError("name a DocType, or pass --all")
	with _on_site(context):
		found = schemas.route_schemas(doctype, topic)
		if not found:
			raise click.ClickException(
				f"no enabled Spine Producer Config row{' for ' + doctype if doctype else ''}"
				f"{' on topic ' + topic if topic else ''}"
			)
		click.echo(json.dumps(found, indent=1))
		if publish:
			click.echo(
				f"{schemas.publish(found)} schema(s) written to the outbox for spine.schemas", err=True
			)


@click.command("spine-relay")
@_metrics_port
@pass_context
@_friendly_errors
def spine_relay(context, metrics_port: int | None) -> None:
	"""Publish captured events the moment their transaction commits (long-running): of every site of
	the bench with Spine installed, or of the one --site names."""
	sites = _named_sites(context)
	if len(sites) == 1:
		from spine import logs
		from spine.producer.relay_process import serve

		logs.to_terminal()
		serve(sites[0], metrics_port)
	else:
		from spine.benchwide import serve

		serve.relay(sites, metrics_port)


# --- consumer commands ---


@click.command("eventdispatcher")
@_queue_option
@_numworkers
@_metrics_port
@pass_context
@_friendly_errors
def eventdispatcher(context, queue: str, numworkers: int, metrics_port: int | None) -> None:
	"""Read the topics of Spine Consumer Config and hand the messages to the jsonworkers' queue: of every
	site of the bench with Spine installed, or of the one --site names."""
	sites = _named_sites(context)
	if len(sites) == 1:
		from spine.consumer.processes import run_dispatchers

		run_dispatchers(sites[0], queue, numworkers, metrics_port)
	else:
		from spine.benchwide import serve

		serve.dispatchers(sites, queue, numworkers, metrics_port)


@click.command("jsonworker")
@_queue_option
@_numworkers
@click.option("--burst", is_flag=True, help="exit once the queue is empty")
@_metrics_port
@pass_context
@_friendly_errors
def jsonworker(context, queue: str, numworkers: int, burst: bool, metrics_port: int | None) -> None:
	"""Store dispatched messages in Message Log and process them: of every site of the bench, or of
	the one --site names."""
	sites = _named_sites(context)
	if len(sites) == 1:
		from spine.consumer.processes import run_workers

		run_workers(sites[0], queue, numworkers, burst=burst, metrics_port=metrics_port)
	else:
		from spine.benchwide import serve

		serve.workers(sites, queue, numworkers, burst=burst, metrics_port=metrics_port)


# --- operations commands ---


@click.command("spine-dev")
@click.option("--port", type=click.IntRange(0, 65535), default=9092, show_default=True,
	help="port of the local broker, when one is started")  # fmt: skip
@click.option("--queue", default="spine_dev", show_default=True, callback=_queue)
@click.option(
	"--demo", is_flag=True, help="also set up a demo: ToDo published to spine-demo and handled here"
)
@click.option(
	"--force",
	is_flag=True,
	help="run even if the site is not in developer mode or the bench looks like production",
)
@pass_context
@_friendly_errors
def spine_dev(context, port: int, queue: str, demo: bool, force: bool) -> None:  # fmt: skip
	"""Development: a local broker if needed, and the relay, a dispatcher and a worker in one terminal,
	printing each event as it is published, stored and handled. Ctrl-C stops everything."""
	from spine.desk.dev import run

	run(get_site(context), port=port, queue=queue, demo=demo, force=force)


@click.command("spine-broker")
@click.option("--port", type=click.IntRange(0, 65535), default=9092, show_default=True)
@click.option(
	"--data-dir", default=None, help="where the broker keeps its data (default: a temporary folder)"
)
@pass_context
@_friendly_errors
def spine_broker(context, port: int, data_dir: str | None) -> None:
	"""Run a local Kafka-protocol broker for development (needs: pip install noida-db); Ctrl-C stops it."""
	import json
	import signal

	from spine.kafka.devbroker import CLIENT_SETTINGS, LocalBroker

	broker = LocalBroker.start(data_dir, port=port)
	site = context.sites[0] if context.sites else "mysite.local"
	block = json.dumps({"bootstrap.servers": broker.bootstrap_servers, "client.id": site, **CLIENT_SETTINGS})
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
@click.option("--queue", default="kafka_events", show_default=True, callback=_queue)
@click.option("--numworkers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
	"--supervisor", "as_supervisor", is_flag=True, help="print a supervisor config instead of Procfile lines"
)
@click.option("--write", is_flag=True, help="append the Procfile lines to the bench's Procfile")
@pass_context
@_friendly_errors
def spine_processes(context, queue: str, numworkers: int, as_supervisor: bool, write: bool) -> None:
	"""Procfile or supervisor entries for spine-relay, eventdispatcher and jsonworker: one set for every
	site of the bench, or with --site, a set for that site alone."""
	import getpass
	import os
	from pathlib import Path

	from spine.config.procfile import add_to_procfile, procfile_lines, supervisor_conf

	sites = _named_sites(context)
	if len(sites) > 1:
		raise click.UsageError("name one --site for per-site lines, or none for the bench-wide ones")
	site = sites[0] if sites else None
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
@click.option("--max-age", type=click.IntRange(min=1), default=600, show_default=True,
	help="seconds a pending entry may wait")  # fmt: skip
@click.option("--no-lag", is_flag=True, help="skip asking the broker for consumer lag")
@pass_context
@_friendly_errors
def spine_status(context, as_json: bool, max_age: int, no_lag: bool) -> None:
	"""Backlog, counts by status, oldest pending age, consumer lag: of the --site, or one row per site
	of the bench. Exit code 1 when something is stuck."""
	import json

	sites = _named_sites(context)
	if len(sites) == 1:
		from spine.desk.status import collect, refused, render

		with _on_site(context):
			report = collect(max_age_seconds=max_age, with_lag=not no_lag)
		stuck = bool(report["problems"])
		if refusal := refused(report):
			click.echo(json.dumps(report, indent=1, default=str) if as_json else render(report))
			click.echo(f"Error: {refusal}", err=True)
			raise SystemExit(1)
	else:
		from spine.benchwide.status import collect, render

		report = collect(sites, max_age_seconds=max_age, with_lag=not no_lag)
		stuck = bool(report["problems"])
	click.echo(json.dumps(report, indent=1, default=str) if as_json else render(report))
	if stuck:
		raise SystemExit(1)


@click.command("spine-rotate-key")
@pass_context
@_friendly_errors
def spine_rotate_key(context) -> None:
	"""Replace the site's signing key with a new one, endorsed by the old one, and publish it on spine.keys."""
	from spine.producer import signing_key

	with _on_site(context):
		key_id = signing_key.rotate()
		import frappe

		frappe.db.commit()
	click.echo(
		f"new signing key {key_id}; sites that trust the old one trust it when it arrives on spine.keys"
	)


commands = [
	spine_backfill,
	spine_schema,
	spine_relay,
	eventdispatcher,
	jsonworker,
	spine_dev,
	spine_broker,
	spine_processes,
	spine_status,
	spine_rotate_key,
]
