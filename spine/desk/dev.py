"""``bench --site S spine-dev``: the whole pipeline in one terminal, for a development bench.

Starts a local broker unless the site names one that answers, writes the site's kafka block only
if it has none (and says so), then runs the relay, one eventdispatcher and one jsonworker as
children of this process and prints one line per event as it flows: published, stored, handled
(or why not), with DocType, name, topic and the milliseconds since the save. Ctrl-C stops them
all; a child never outlives this process.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import frappe
from frappe.utils import get_bench_path, get_system_timezone, now_datetime

from spine.errors import BrokerUnavailable, SpineError

DEMO_TOPIC = "spine-demo"
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


def run(
	site: str, *, port: int = 9092, queue: str = "spine_dev", demo: bool = False, force: bool = False
) -> None:
	"""Run the pipeline of ``site`` until Ctrl-C. Raises ``SpineError`` (one line for the user) when it
	should not run here: not a development site, or a kafka block naming an unreachable remote broker."""
	from spine.consumer import processes
	from spine.producer import relay_process

	frappe.init(site=site)
	frappe.connect()
	try:
		_refuse_production(site, force)
		broker = _broker(site, port)
		if demo:
			_set_up_demo()
		frappe.db.commit()  # nosemgrep: frappe-manual-commit - the demo config must be visible to the children
	finally:
		frappe.destroy()  # the children connect themselves; nothing is shared across fork

	click.echo(
		f"spine-dev on {site}: relay, eventdispatcher and jsonworker (queue {queue}); Ctrl-C stops them"
	)
	if demo:
		click.echo(f"  demo: save a ToDo (e.g. bench --site {site} execute frappe.client.insert --kwargs "
			'\'{"doc": {"doctype": "ToDo", "description": "hello"}}\') and watch it flow')  # fmt: skip
	watcher = _Watcher(site)
	try:
		processes.run_group(
			[
				processes.Child("spine-relay", relay_process.serve, (site,)),
				processes.Child("eventdispatcher", processes.dispatcher_main, (0, site, queue)),
				processes.Child("jsonworker", processes.worker_main, (0, queue, False, lambda: [site])),
			],
			while_running=watcher.poll,
		)
	finally:
		watcher.close()
		if broker is not None:
			broker.stop()
			click.echo("local broker stopped")


def _refuse_production(site: str, force: bool) -> None:
	if force:
		return
	if not frappe.conf.get("developer_mode"):
		raise SpineError(
			f"{site} is not in developer mode, and spine-dev starts a throwaway broker: it is for "
			f"development benches. Turn developer mode on (bench --site {site} set-config developer_mode 1) "
			"or pass --force."
		)
	production = [
		p for p in ("config/supervisor.conf", "config/nginx.conf") if (Path(get_bench_path()) / p).exists()
	]
	if production:
		raise SpineError(
			f"this bench looks like production ({', '.join(production)} exist). Run Spine there with "
			f"`bench --site {site} spine-processes --supervisor`; pass --force to run spine-dev anyway."
		)


def _broker(site: str, port: int):
	"""The broker to use: the site's if it answers; else a local one. Returns it if started here."""
	from frappe.installer import update_site_config

	from spine.kafka.admin import check
	from spine.kafka.devbroker import CLIENT_SETTINGS, LocalBroker
	from spine.settings import broker as site_broker

	raw = frappe.conf.get("kafka")
	if raw:
		settings = site_broker.site_settings()
		if check(settings.admin, [], timeout=3)["ok"]:
			click.echo(f"broker: {settings.bootstrap_servers} (from site_config.json) answers")
			return None
		host, _, wanted = settings.bootstrap_servers.split(",")[0].rpartition(":")
		if host not in _LOCAL_HOSTS or not wanted.isdigit():
			raise BrokerUnavailable(
				f"site_config.json names the broker {settings.bootstrap_servers}, which does not answer, and it "
				"is not on this machine. Start it, or remove the kafka block to let spine-dev start a local one."
			)
		_ensure_broker_package()
		local = LocalBroker.start(port=int(wanted))
		click.echo(f"broker: started a local one on {local.bootstrap_servers}, as site_config.json names")
		return local
	_ensure_broker_package()
	local = LocalBroker.start(port=port)
	block = {"bootstrap.servers": local.bootstrap_servers, "client.id": site, **CLIENT_SETTINGS}
	update_site_config("kafka", block)
	frappe.local.conf.kafka = block
	click.echo(f"broker: started a local one on {local.bootstrap_servers}")
	click.echo(f'site_config.json had no kafka block; wrote: "kafka": {json.dumps(block)}')
	return local


def _ensure_broker_package() -> None:
	"""The local broker's package is installed, or installed now if the developer says yes at the
	prompt; otherwise stop, saying the one command that installs it."""
	import shlex
	import subprocess
	import sys

	from spine.kafka.devbroker import PACKAGE, BrokerStartError, install_command, package_installed

	if package_installed():
		return
	command = shlex.join(install_command())
	if not sys.stdin.isatty() or not click.confirm(
		f"The local broker needs the {PACKAGE} package, which this bench's Python lacks. Install it now "
		f"({command})?",
		default=True,
	):
		raise BrokerStartError(f"the local broker needs {PACKAGE}; install it with: {command}")
	if subprocess.run(install_command()).returncode != 0 or not package_installed():
		raise BrokerStartError(f"installing {PACKAGE} failed (see above); try: {command}")


def _set_up_demo() -> None:
	"""ToDo published to ``spine-demo`` on each save (an insert is one save: one message, as the
	README's first run shows) and handled by this site (demo handler), if not set up yet."""
	producer = frappe.get_single("Spine Producer Config")
	if not any(r.document_type == "ToDo" and r.topic == DEMO_TOPIC for r in producer.configs):
		producer.enabled = 1
		producer.append(
			"configs", {"document_type": "ToDo", "topic": DEMO_TOPIC, "on_insert": 0, "on_update": 1}
		)
		producer.save(ignore_permissions=True)
		click.echo(f"demo: Spine Producer Config publishes ToDo to {DEMO_TOPIC}")
	consumer = frappe.get_single("Spine Consumer Config")
	if not any(r.topic == DEMO_TOPIC and r.document_type == "ToDo" for r in consumer.configs):
		consumer.append(
			"configs",
			{"topic": DEMO_TOPIC, "document_type": "ToDo", "event_handler": "spine.demo.record_call"},
		)
		consumer.test_mode = 1  # this site handles what it published itself
		consumer.save(ignore_permissions=True)
		click.echo(
			f"demo: Spine Consumer Config handles {DEMO_TOPIC} with spine.demo.record_call (own messages too)"
		)


class _Watcher:
	"""Prints Message Log rows as they change: one line per published, stored and handled event."""

	def __init__(self, site: str):
		self.site = site
		self.connected = False
		self.since: datetime.datetime | None = None
		self.shown: dict[tuple[str, str], str] = {}
		self.saved_at: dict[str, datetime.datetime] = {}

	def poll(self) -> None:
		try:
			if not self.connected:
				frappe.init(site=self.site)
				frappe.connect()
				self.connected = True
				self.since = now_datetime()
			self._show_changes()
		except Exception as e:  # the watcher must never stop the pipeline; say why and go on
			click.echo(f"(spine-dev could not read Message Log: {e})", err=True)
			self.close()

	def _show_changes(self) -> None:
		frappe.db.rollback()  # a fresh snapshot each time
		rows = frappe.db.sql(
			"""SELECT name, direction, status, message_id, document_type, document_name, topic, creation,
				done_at, modified, kafka_partition, kafka_offset, last_error, message
			FROM `tabMessage Log` WHERE modified >= %s ORDER BY modified, name LIMIT 500""",
			(self.since,),
			as_dict=True,
		)
		for row in rows:
			self.since = max(self.since, row.modified)
			key = (row.direction, row.message_id or str(row.name))
			if self.shown.get(key) == row.status:
				continue
			first_sight = key not in self.shown
			self.shown[key] = row.status
			if first_sight and row.direction == "Inbound" and row.status not in ("Pending", "Invalid"):
				# stored and handled between two looks: say both
				click.echo(f"stored     {row.document_type or '?'} {row.document_name or '?'} from {row.topic} "
					f"{self._ms(row, row.creation)}")  # fmt: skip
			line = self._line(row)
			if line:
				click.echo(line)

	def _line(self, row) -> str | None:
		what = f"{row.document_type or '?'} {row.document_name or '?'}"
		if row.direction == "Outbound":
			self.saved_at.setdefault(row.message_id, row.creation)
			if row.status == "Published":
				return f"published  {what} → {row.topic} [{row.kafka_partition}@{row.kafka_offset}] {self._ms(row, row.done_at)}"
			if row.status == "Failed":
				return f"NOT published  {what} → {row.topic}: {_first_line(row.last_error)}"
			return None
		if row.status == "Pending":
			return f"stored     {what} from {row.topic} {self._ms(row, row.creation)}"
		if row.status == "Processed":
			return f"handled    {what} {self._ms(row, row.done_at)}"
		if row.status in ("Error", "Failed", "Skipped", "Invalid"):
			return f"{row.status.lower():<10} {what} from {row.topic}: {_first_line(row.last_error)}"
		return None

	def _ms(self, row, when: datetime.datetime | None) -> str:
		saved = self.saved_at.get(row.message_id) or _header_time(row.message)
		if not saved or not when:
			return ""
		return f"({(when - saved).total_seconds() * 1000:,.0f} ms after the save)"

	def close(self) -> None:
		if self.connected:
			self.connected = False
			frappe.destroy()


def _first_line(text: str | None) -> str:
	lines = [line for line in (text or "").strip().splitlines() if line.strip()]
	return lines[-1][:200] if lines else ""


def _header_time(message: str | None) -> datetime.datetime | None:
	"""The envelope's Header.Timestamp as a naive site-time datetime, if it can be read (ISO 8601 with
	an offset, or the original adapter's zone-less form, taken as site time)."""
	try:
		moment = datetime.datetime.fromisoformat(str(json.loads(message or "{}")["Header"]["Timestamp"]))
	except (ValueError, KeyError, TypeError):
		return None
	if moment.tzinfo:
		moment = moment.astimezone(ZoneInfo(get_system_timezone())).replace(tzinfo=None)
	return moment
