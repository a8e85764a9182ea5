"""Frappe-side foundation: DocTypes, permissions, config validation and cache, install/uninstall."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.bench.helpers import (
	DB_ROOT_ARGS,
	DB_ROOT_PASSWORD,
	DB_ROOT_USER,
	bench_run,
	ensure_user,
	redis_cache,
	restore_single,
)

SPINE_DOCTYPES = (
	"Message Log",
	"Spine Producer Config",
	"Spine Producer Handler Mapping",
	"Spine Consumer Config",
	"Spine Consumer Handler Mapping",
)


def test_doctypes_are_installed(frappe_site):
	import frappe

	for dt in SPINE_DOCTYPES:
		meta = frappe.get_meta(dt)
		assert meta.module == "Spine Adapter", dt
	assert frappe.get_meta("Spine Producer Config").issingle
	assert frappe.get_meta("Spine Consumer Config").issingle
	log = frappe.get_meta("Message Log")
	assert log.autoname == "autoincrement"
	fields = {f.fieldname: f for f in log.fields}
	for name in (
		"direction",
		"status",
		"message_id",
		"topic",
		"kafka_partition",
		"kafka_offset",
		"kafka_key",
		"document_type",
		"document_name",
		"event",
		"message",
		"attempts",
		"next_attempt_at",
		"last_error",
		"done_at",
		"origin_site",
	):
		assert name in fields, name


def test_message_log_indexes_serve_the_relay_and_processor(frappe_site):
	import frappe

	rows = frappe.db.sql("SHOW INDEX FROM `tabMessage Log`", as_dict=True)
	by_key: dict[str, list[str]] = {}
	for r in rows:
		by_key.setdefault(r.Key_name, []).append(r.Column_name)
	columns = list(by_key.values())
	assert ["direction", "status", "next_attempt_at"] in columns
	assert ["kafka_key", "status"] in columns
	assert any(c == ["message_id", "direction"] and by_key_unique(rows, k) for k, c in by_key.items())


def by_key_unique(rows, key_name) -> bool:
	return any(r.Key_name == key_name and not r.Non_unique for r in rows)


def test_only_system_manager_can_read_logs_and_edit_configs(frappe_site):
	import frappe

	other = ensure_user("spine-blogger@example.com", "Blogger")
	manager = ensure_user("spine-system-manager@example.com", "System Manager")
	for dt in ("Message Log", "Spine Producer Config", "Spine Consumer Config"):
		assert not frappe.has_permission(dt, "read", user=other), dt
		assert not frappe.has_permission(dt, "write", user=other), dt
		assert frappe.has_permission(dt, "read", user=manager), dt
	assert frappe.has_permission("Spine Producer Config", "write", user=manager)
	assert frappe.has_permission("Spine Consumer Config", "write", user=manager)
	# entries change only through Spine's own code paths and actions, never by editing the form
	assert not frappe.has_permission("Message Log", "write", user=manager)


@pytest.fixture
def producer_config(frappe_site):
	import frappe

	doc = frappe.get_single("Spine Producer Config")
	saved = doc.as_dict()
	yield doc
	restore_single("Spine Producer Config", saved, ("enabled",))


def test_a_saved_producer_config_is_in_force_for_the_next_transaction(producer_config):
	import frappe

	from spine.settings import config_cache

	redis_cache().delete_value(list(config_cache.LEGACY_REDIS_KEYS))  # what an earlier release kept
	producer_config.set("configs", [])
	producer_config.save()
	frappe.db.commit()
	assert "ToDo" not in config_cache.producer_routes()

	producer_config.append(
		"configs", {"document_type": "ToDo", "topic": "todos", "on_update": 1, "on_trash": 1}
	)
	producer_config.save()
	frappe.db.commit()
	(route,) = config_cache.producer_routes()["ToDo"]
	assert (route["topic"], route["handler"], route["events"]) == (
		"todos", None, ["on_update", "on_update_after_submit", "on_trash"],
	)  # fmt: skip
	assert route["condition"] is None and route["fields"]["all"]
	assert not redis_cache().exists("spine:producer_routes"), "nothing of the config is kept in Redis"


def test_routes_read_inside_a_rolled_back_config_save_are_not_kept(producer_config):
	"""A read inside the saving transaction (a Version row's capture hook, the consumer settings)
	sees the new, uncommitted rows; after a rollback this process does not keep them."""
	import frappe

	from spine.settings import config_cache

	producer_config.set("configs", [])
	producer_config.save()
	frappe.db.commit()
	producer_config.append("configs", {"document_type": "ToDo", "topic": "todos", "on_update": 1})
	producer_config.save()
	assert "ToDo" in config_cache.producer_routes(), "inside the transaction the new rows are seen"
	frappe.db.rollback()
	assert "ToDo" not in config_cache.producer_routes(), "the rolled-back rows are not kept"


def test_a_copy_built_from_a_snapshot_older_than_a_save_is_never_used_after_it(producer_config):
	"""The race behind configs that stayed stale: a process whose transaction began before another
	process committed a config save builds the routes from its old snapshot after that commit. Here
	this process is that process: it holds a snapshot, another process saves Spine Producer Config
	(a real ``bench execute``), this process builds the routes from its snapshot (the old ones, right
	for that transaction), then starts a new transaction: it must see the new routes at once, and
	so must a third process that reads them afterwards."""
	import frappe

	from spine.settings import config_cache
	from tests.bench.helpers import in_other_process

	topic = f"snapshot-race-{uuid.uuid4().hex[:6]}"
	producer_config.set("configs", [])
	producer_config.save()
	frappe.db.commit()
	frappe.db.sql("SELECT COUNT(*) FROM `tabSingles`")  # this transaction's snapshot starts here
	in_other_process(
		"doc = frappe.get_single('Spine Producer Config')\n"
		f"doc.append('configs', {{'document_type': 'Note', 'topic': '{topic}', 'on_insert': 1}})\n"
		"doc.save()"
	)
	assert "Note" not in config_cache.producer_routes(), "the old snapshot still holds the old rows"
	frappe.db.rollback()  # a new transaction, after the other process's commit
	assert [r["topic"] for r in config_cache.producer_routes().get("Note", [])] == [topic]
	elsewhere = in_other_process(
		"from spine.settings import config_cache\n"
		"result = [r['topic'] for r in config_cache.producer_routes().get('Note', [])]"
	)
	assert elsewhere == [topic], "another process sees the saved routes too"


def test_a_saved_consumer_config_is_in_force_for_the_next_transaction(frappe_site):
	import frappe

	from spine.config.topics import INITIAL_SYNC_TOPIC, KEYS_TOPIC, reply_topic
	from spine.settings import config_cache

	doc = frappe.get_single("Spine Consumer Config")
	saved = [
		dict(topic=r.topic, document_type=r.document_type, event_handler=r.event_handler, enabled=r.enabled)
		for r in doc.configs
	]
	try:
		doc.set("configs", [])
		doc.save()
		assert config_cache.consumer_settings()["routes"] == {}
		doc.append(
			"configs",
			{
				"topic": "items",
				"document_type": "Item",
				"event_handler": "spine.handlers.split_paths, spine.handlers.split_paths",
			},
		)
		doc.save()
		frappe.db.commit()
		settings = config_cache.consumer_settings()
		assert settings["routes"]["items"]["Item"]["handlers"] == ["spine.handlers.split_paths"]
		assert settings["routes"]["items"]["Item"]["batch"] is False
		# beside the configured topic: the site's reply topic, sync rules' topics, other sites' signing
		# keys, and on a publishing site the initial-sync requests
		expected = {"items", reply_topic(frappe.local.site), KEYS_TOPIC, *settings["sync_rules"]}
		if config_cache.producer_routes():
			expected.add(INITIAL_SYNC_TOPIC)
		assert settings["topics"] == sorted(expected)
	finally:
		doc = frappe.get_single("Spine Consumer Config")
		doc.set("configs", saved)
		doc.save()
		frappe.db.commit()


@pytest.mark.parametrize(
	"row, message",
	[
		({"document_type": "ToDo", "topic": "bad topic"}, "contains ' '"),
		(
			{"document_type": "ToDo", "topic": "todos", "event_handler": "os.system"},
			"not inside an installed app",
		),
		(
			{"document_type": "ToDo", "topic": "todos", "event_handler": "spine.nothing.here"},
			"does not exist",
		),
		({"document_type": "No Such DocType", "topic": "todos"}, "Could not find Row #1: DocType"),
	],
)
def test_producer_config_refuses_bad_rows(producer_config, row, message):
	import frappe

	producer_config.set("configs", [row])
	with pytest.raises(frappe.ValidationError, match=message):
		producer_config.save()
	frappe.db.rollback()


def test_producer_config_refuses_duplicate_rows(producer_config):
	import frappe

	producer_config.set(
		"configs", [{"document_type": "ToDo", "topic": "t1"}, {"document_type": "ToDo", "topic": "t1"}]
	)
	with pytest.raises(frappe.ValidationError, match="repeats row 1"):
		producer_config.save()
	frappe.db.rollback()


def test_consumer_config_refuses_bad_rows_and_retry_settings(frappe_site):
	import frappe

	doc = frappe.get_single("Spine Consumer Config")
	doc.set(
		"configs",
		[{"topic": "items", "document_type": "Item", "event_handler": "spine.handlers.split_paths, nope"}],
	)
	with pytest.raises(frappe.ValidationError, match="not a dotted Python path"):
		doc.save()
	frappe.db.rollback()
	doc = frappe.get_single("Spine Consumer Config")
	doc.set("configs", [])
	doc.retry_backoff_seconds, doc.retry_backoff_max_seconds = 100, 10
	with pytest.raises(frappe.ValidationError, match="max_seconds"):
		doc.save()
	frappe.db.rollback()


def _root_sql(query: str, args=()) -> tuple:
	"""Run SQL as the MariaDB root user (the site's own user cannot see another site's database)."""
	import pymysql

	conn = pymysql.connect(host="127.0.0.1", user=DB_ROOT_USER, password=DB_ROOT_PASSWORD)
	try:
		with conn.cursor() as cur:
			cur.execute(query, args)
			rows = cur.fetchall()
		conn.commit()
		return rows
	finally:
		conn.close()


def _spine_tables() -> set[str]:
	"""The tables Spine's DocTypes that are not Single have, read from their JSON."""
	import spine

	folder = Path(spine.__file__).parent / "spine_adapter" / "doctype"
	docs = [json.loads(p.read_text()) for p in folder.glob("*/*.json")]
	return {f"tab{d['name']}" for d in docs if d.get("doctype") == "DocType" and not d.get("issingle")}


def _tables(site_db: str) -> set[str]:
	rows = _root_sql(
		"SELECT table_name FROM information_schema.tables WHERE table_schema=%s AND "
		"(table_name LIKE 'tabSpine%%' OR table_name = 'tabMessage Log')",
		(site_db,),
	)
	return {r[0] for r in rows}


@pytest.mark.slow
def test_install_and_uninstall_on_a_fresh_site(frappe_site):
	"""install-app creates the DocTypes and tables; uninstall-app leaves the site clean."""
	site = f"spine-install-{uuid.uuid4().hex[:6]}.test"
	made = bench_run(
		"new-site",
		site,
		*DB_ROOT_ARGS,
		"--admin-password",
		"admin",
		"--db-host",
		"127.0.0.1",
	)
	assert made.returncode == 0, made.stderr[-2000:]
	try:
		with open(os.path.join(os.environ["SPINE_BENCH"], "sites", site, "site_config.json")) as f:
			db_name = json.load(f)["db_name"]
		installed = bench_run("--site", site, "install-app", "spine")
		assert installed.returncode == 0, installed.stderr[-2000:]
		assert _tables(db_name) == _spine_tables() and "tabMessage Log" in _spine_tables()
		listed = bench_run("--site", site, "list-apps")
		assert "spine" in listed.stdout
		has_switch = _root_sql(
			"SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
			"AND table_name = 'tabList View Settings' AND column_name = 'disable_comment_count'",
			(db_name,),
		)  # Frappe v14's List View Settings has no such switch; the row is made all the same
		column = "disable_comment_count" if has_switch else "1"
		assert _root_sql(
			f"SELECT {column} FROM `{db_name}`.`tabList View Settings` WHERE name = 'Message Log'"
		) == ((1,),), "the log's list shows no comment counts"

		removed = bench_run("--site", site, "uninstall-app", "spine", "--yes", "--no-backup")
		assert removed.returncode == 0, removed.stderr[-2000:]
		assert _tables(db_name) == set()
		leftovers = _root_sql(
			f"SELECT name FROM `{db_name}`.`tabDocType` WHERE module='Spine Adapter' "
			f"UNION SELECT name FROM `{db_name}`.`tabModule Def` WHERE app_name='spine' "
			f"UNION SELECT doctype FROM `{db_name}`.`tabSingles` WHERE doctype LIKE 'Spine%%' "
			f"UNION SELECT name FROM `{db_name}`.`tabList View Settings` WHERE name = 'Message Log'"
		)
		assert leftovers == ()
		assert "spine" not in bench_run("--site", site, "list-apps").stdout
	finally:
		bench_run(
			"drop-site",
			site,
			*DB_ROOT_ARGS,
			"--no-backup",
			"--force",
		)


@pytest.mark.slow
def test_a_broken_install_never_stops_saves_and_migrate_repairs_it(scratch_site):
	"""Spine's DocTypes and tables gone (a failed install): saves still work, each uncaptured event is an
	Error Log naming the document, and `bench migrate` brings Spine back."""
	site, db = scratch_site
	_root_sql(f"DROP TABLE `{db}`.`tabMessage Log`")
	for doctype in ("Spine Producer Config", "Spine Consumer Config"):
		_root_sql(f"DELETE FROM `{db}`.`tabDocField` WHERE parent = %s", (doctype,))
		_root_sql(f"DELETE FROM `{db}`.`tabDocType` WHERE name = %s", (doctype,))
	assert bench_run("--site", site, "clear-cache").returncode == 0

	todo = json.dumps({"doc": {"doctype": "ToDo", "description": "saved on a broken install"}})
	saved = bench_run("--site", site, "execute", "frappe.client.insert", "--kwargs", todo)
	assert saved.returncode == 0, saved.stderr[-2000:]
	name = json.loads(saved.stdout.strip().splitlines()[-1])["name"]
	logged = _root_sql(
		f"SELECT method, error FROM `{db}`.`tabError Log` WHERE reference_doctype = 'ToDo' AND reference_name = %s",
		(name,),
	)
	assert logged and all("NOT captured" in e and "migrate" in e for _, e in logged), (saved.stdout, logged)

	repaired = bench_run("--site", site, "migrate")
	assert repaired.returncode == 0, repaired.stderr[-2000:]
	assert "tabMessage Log" in _tables(db)
	again = bench_run("--site", site, "execute", "frappe.client.insert", "--kwargs", todo)
	assert again.returncode == 0, again.stderr[-2000:]
	name = json.loads(again.stdout.strip().splitlines()[-1])["name"]
	assert _root_sql(f"SELECT COUNT(*) FROM `{db}`.`tabError Log` WHERE reference_name = %s", (name,)) == (
		(0,),
	)


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _dry_run_changes(*install_args: str) -> list[tuple[str, str, str]]:
	"""``(name, installed version, version pip would put instead)`` for each installed package that
	``pip install --dry-run <install_args>`` in the bench's env would change."""
	bench_python = os.path.join(os.environ["SPINE_BENCH"], "env", "bin", "python")
	report = subprocess.run(
		[bench_python, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-", *install_args,
			"--disable-pip-version-check"],
		capture_output=True, text=True, timeout=300,
	)  # fmt: skip
	assert report.returncode == 0, report.stderr[-2000:]
	listed = subprocess.run(
		[bench_python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
		capture_output=True, text=True, timeout=120,
	)  # fmt: skip
	installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listed.stdout)}
	return [
		(key, installed[key], m["version"])
		for item in json.loads(report.stdout)["install"]
		if (m := item["metadata"]) and (key := m["name"].lower().replace("_", "-")) in installed
		and installed[key] != m["version"]
	]  # fmt: skip


def test_installing_spine_changes_no_package_the_bench_has():
	"""`bench get-app` runs `pip install -e apps/spine`: pip must keep every installed version."""
	changes = [c for c in _dry_run_changes("-e", ROOT) if c[0] != "spine"]
	assert not changes, changes


def test_installing_the_test_requirements_changes_no_package_frappe_pins():
	"""What tests/README tells users to run in the bench's env (``pip install -r requirements-test.txt``),
	as on a bench that does not have them yet: pip takes the newest version each range allows
	(``--upgrade`` of the named packages only), and no package Frappe's pyproject.toml pins changes."""
	import tomllib
	from packaging.requirements import Requirement

	with open(os.path.join(os.environ["SPINE_BENCH"], "apps", "frappe", "pyproject.toml"), "rb") as f:
		pinned = {
			Requirement(r).name.lower().replace("_", "-") for r in tomllib.load(f)["project"]["dependencies"]
		}
	changes = [
		c
		for c in _dry_run_changes(
			"--upgrade",
			"--upgrade-strategy",
			"only-if-needed",
			"-r",
			os.path.join(ROOT, "requirements-test.txt"),
		)
		if c[0] in pinned
	]
	assert not changes, f"installing requirements-test.txt would change Frappe's pins: {changes}"
