"""Desk in a real headless browser: Spine's forms, the Message Log list and form, Retry from the list.

Needs a bench with built assets, Debian's chromium and chromedriver, and selenium; otherwise
skipped with the reason. Screenshots go to SPINE_SCREENSHOTS (default: a temporary folder).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager

import pytest

from tests.bench.helpers import BenchProcess, unique, wait_for

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _missing() -> str | None:
	if not os.environ.get("SPINE_BENCH") or not os.environ.get("SPINE_SITE"):
		return None  # no bench at all: every bench test is skipped with that reason (tests/conftest.py)
	if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
		return "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
	try:
		import selenium
	except ImportError:
		return "needs selenium in the bench's Python (pip install selenium)"
	assets = os.path.join(os.environ.get("SPINE_BENCH", ""), "sites", "assets", "assets.json")
	if not os.path.exists(assets):
		return "the bench has no built Desk assets (run `bench build --app frappe`)"
	return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(_missing()), reason=_missing() or "")]


def _free_port() -> int:
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


@pytest.fixture(scope="module")
def desk(frappe_site):
	"""A logged-in headless Chromium on ``bench serve`` for the test site."""
	with desk_session() as session:
		yield session


@contextmanager
def desk_session():
	"""``(driver, base url, screenshot folder)``: a logged-in headless Chromium on ``bench serve``."""
	import frappe
	from selenium import webdriver
	from selenium.webdriver.chrome.options import Options
	from selenium.webdriver.chrome.service import Service
	from selenium.webdriver.common.by import By

	# what the setup wizard leaves behind, so Desk shows what users see (navbar, home page), not the wizard
	frappe.db.set_single_value("System Settings", "setup_complete", 1)
	frappe.db.set_default("desktop:home_page", "workspace")
	frappe.db.commit()
	frappe.clear_cache()
	port = _free_port()
	server = BenchProcess("serve", "--port", str(port))
	base = f"http://127.0.0.1:{port}"
	profile = tempfile.mkdtemp(prefix="spine-chromium-")
	options = Options()
	options.binary_location = CHROMIUM
	for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		f"--user-data-dir={profile}", "--window-size=1400,1000"):  # fmt: skip
		options.add_argument(arg)
	driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
	driver.implicitly_wait(0)
	try:
		wait_for(lambda: _answers(base), 60, what=lambda: f"bench serve\n{server.output()[-2000:]}")
		driver.get(base + "/login")
		wait_for(lambda: driver.find_elements(By.ID, "login_email"), 30, what="the login form")
		driver.find_element(By.ID, "login_email").send_keys("Administrator")
		driver.find_element(By.ID, "login_password").send_keys(
			os.environ.get("SPINE_ADMIN_PASSWORD", "admin")
		)
		driver.find_element(By.CSS_SELECTOR, ".btn-login").click()
		wait_for(lambda: "/app" in driver.current_url, 30, what="login")
		shots = os.environ.get("SPINE_SCREENSHOTS") or tempfile.mkdtemp(prefix="spine-shots-")
		os.makedirs(shots, exist_ok=True)
		yield driver, base, shots
	finally:
		driver.quit()
		server.stop()
		shutil.rmtree(profile, ignore_errors=True)


def _answers(base: str) -> bool:
	import urllib.request

	try:
		return urllib.request.urlopen(base + "/api/method/ping", timeout=2).status == 200
	except OSError:
		return False


def _open(driver, url: str, title: str, shots: str, shot: str) -> None:
	from selenium.webdriver.common.by import By

	driver.get(url)
	wait_for(
		lambda: any(title in e.text for e in driver.find_elements(By.CSS_SELECTOR, ".page-head .title-text")),
		30,
		what=f"page title {title!r} at {url}",
	)
	time.sleep(0.5)
	driver.save_screenshot(os.path.join(shots, shot))


def _texts(driver, css: str) -> list[str]:
	from selenium.common.exceptions import StaleElementReferenceException
	from selenium.webdriver.common.by import By

	texts = []
	for e in driver.find_elements(By.CSS_SELECTOR, css):
		try:
			text = e.text.strip()
		except StaleElementReferenceException:  # re-rendered meanwhile: the next look sees the new one
			continue
		if text:
			texts.append(text)
	return texts


def test_config_forms_show_the_broker_and_a_plain_connection_dialog(desk, kafka_bootstrap):
	from selenium.webdriver.common.by import By

	from tests.bench.helpers import site_kafka

	driver, base, shots = desk
	with site_kafka(kafka_bootstrap):
		for doctype, slug in (
			("Spine Producer Config", "spine-producer-config"),
			("Spine Consumer Config", "spine-consumer-config"),
		):
			_open(driver, f"{base}/app/{slug}", doctype, shots, f"{slug}.png")
			wait_for(lambda: kafka_bootstrap in " ".join(_texts(driver, ".form-message")), 20,
				what=f"the broker named on {doctype}")  # fmt: skip
			assert not driver.find_elements(
				By.CSS_SELECTOR, ".form-sidebar .like-action, .timeline-item .comment-box"
			), f"{doctype}: no likes, comments or activity on a settings form"
			assert "Enabled" in driver.page_source, f"{doctype} has a master switch"
		button = [
			b
			for b in driver.find_elements(By.CSS_SELECTOR, ".page-actions button")
			if b.text.strip() == "Check connection"
		]
		button[0].click()
		dialog = wait_for(lambda: [d for d in driver.find_elements(By.CSS_SELECTOR, ".modal-dialog") if "Kafka connection" in d.text],
			30, what="the Check connection dialog")[0]  # fmt: skip
		text = dialog.text
		driver.save_screenshot(os.path.join(shots, "check-connection.png"))
		assert kafka_bootstrap in text and "1 broker in the cluster" in text, text
		assert "brokers)" not in text and "1 partitions" not in text and "1 missing topics" not in text, text


def test_message_log_is_read_only_sorted_newest_first_and_readable(desk):
	import frappe
	from selenium.webdriver.common.by import By

	from tests.bench.test_operations import _insert

	driver, base, shots = desk
	topic = unique("desk-list")  # explicit filter: Desk remembers a user's last list filters
	names = [_insert("Inbound", status, topic) for status in ("Processed", "Error", "Invalid")]
	frappe.db.sql(
		"UPDATE `tabMessage Log` SET creation = %s WHERE topic = %s", (frappe.utils.now_datetime(), topic)
	)
	frappe.db.commit()
	try:
		with pytest.raises(frappe.ValidationError, match="read-only"):
			frappe.get_doc("Message Log", names[0]).save()  # not through Desk or the API either
		_open(driver, f"{base}/app/message-log?topic={topic}", "Message Log", shots, "message-log-list.png")

		def rows():
			found = driver.find_elements(By.CSS_SELECTOR, ".list-row-container .list-row")
			return found if len(found) >= 3 else None

		wait_for(rows, 30, what="the three rows")
		time.sleep(0.5)
		driver.save_screenshot(os.path.join(shots, "message-log-list.png"))
		pills = {
			p.text.strip(): p.get_attribute("class")
			for p in driver.find_elements(By.CSS_SELECTOR, ".list-row .indicator-pill")
		}
		assert "green" in pills["Processed"] and "red" in pills["Error"] and "purple" in pills["Invalid"]
		shown = [a.get_attribute("href").rstrip("/").rsplit("/", 1)[-1]
			for a in driver.find_elements(By.CSS_SELECTOR, ".list-row-container .list-row a.ellipsis[href*='/message-log/']")]  # fmt: skip
		assert shown[:3] == [
			str(n) for n in sorted(names, reverse=True)
		], "same second: newest (highest) name first"
		clipped = driver.execute_script(
			"return [...document.querySelectorAll('.list-row-container .list-row .list-row-col')]"
			".filter(c => c.innerText.trim() === 'ToDo' && c.scrollWidth > c.clientWidth).length"
		)
		assert clipped == 0, "the DocType column shows the whole DocType"

		_open(driver, f"{base}/app/message-log/{names[1]}", "op", shots, "message-log-form.png")
		primary = [
			b.text.strip()
			for b in driver.find_elements(By.CSS_SELECTOR, ".page-actions .primary-action")
			if b.is_displayed()
		]
		assert "Save" not in primary, primary
		assert not driver.find_elements(
			By.CSS_SELECTOR, ".frappe-control[data-fieldname='status'] select"
		), "status is not editable"
		assert "Retry" in driver.page_source and "Readable JSON" in driver.page_source
		assert not driver.find_elements(
			By.CSS_SELECTOR, ".form-sidebar, .new-timeline, .comment-box"
		), "no sidebar, activity or comments"
		assert "ISO 8601" in driver.page_source, "the form says which time is which"
	finally:
		frappe.db.delete("Message Log", {"topic": topic})
		frappe.db.commit()


def test_retry_from_the_list(desk):
	import frappe
	from selenium.webdriver.common.by import By

	from tests.bench.test_operations import _insert

	driver, base, shots = desk
	topic = unique("desk-retry")
	name = _insert("Inbound", "Failed", topic)
	frappe.db.commit()
	try:
		_open(
			driver, f"{base}/app/message-log/{name}", "op", shots, "message-log-form.png"
		)  # title: document name
		assert "Retry" in driver.page_source and "Readable JSON" in driver.page_source
		_open(
			driver, f"{base}/app/message-log?topic={topic}", "Message Log", shots, "message-log-filtered.png"
		)
		checkbox = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".list-row-container .list-row-checkbox"),
			30, what="the Failed row in the list")  # fmt: skip
		assert len(checkbox) == 1
		checkbox[0].click()
		wait_for(lambda: [b for b in driver.find_elements(By.CSS_SELECTOR, ".actions-btn-group button") if b.is_displayed()],
			10, what="the Actions menu")[0].click()  # fmt: skip
		retry = wait_for(lambda: [a for a in driver.find_elements(By.CSS_SELECTOR, ".actions-btn-group .dropdown-item")
			if a.is_displayed() and a.text.strip() == "Retry"], 10, what="the Retry action")  # fmt: skip
		retry[0].click()

		def retried():
			frappe.db.rollback()
			return frappe.db.get_value("Message Log", name, "status") == "Pending"

		wait_for(retried, 30, what="the entry to be Pending after Retry")
		wait_for(lambda: "Pending" in " ".join(_texts(driver, ".list-row-container .indicator-pill")), 30,
			what="the list to show the entry as Pending (refreshed after the action)")  # fmt: skip
		driver.save_screenshot(os.path.join(shots, "message-log-after-retry.png"))
	finally:
		frappe.db.delete("Message Log", {"topic": topic})
		frappe.db.commit()


@pytest.fixture
def lag_unknown(frappe_site):
	"""A configured topic and a broker that does not answer: the consumer lag cannot be read."""
	import frappe

	from tests.bench.helpers import restore_single, site_kafka

	saved = frappe.get_single("Spine Consumer Config").as_dict()
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		dead = f"127.0.0.1:{s.getsockname()[1]}"
	with site_kafka(dead):
		doc = frappe.get_single("Spine Consumer Config")
		doc.set(
			"configs", [{"topic": unique("lag"), "document_type": "ToDo", "event_handler": "spine.demo.noop"}]
		)
		doc.save(ignore_permissions=True)
		frappe.db.commit()
		try:
			yield
		finally:
			restore_single("Spine Consumer Config", saved)


@pytest.fixture
def nothing_consumed(frappe_site):
	"""No topic read for the test's duration (on a site used before, some are): Spine Consumer Config
	off and empty, Spine Producer Config off (a publishing site reads initial-sync requests)."""
	import frappe

	from tests.bench.helpers import restore_single

	saved = {d: frappe.get_single(d).as_dict() for d in ("Spine Consumer Config", "Spine Producer Config")}
	for doctype in saved:
		doc = frappe.get_single(doctype)
		doc.enabled = 0
		if doctype == "Spine Consumer Config":
			doc.set("configs", [])
		doc.save(ignore_permissions=True)
	frappe.db.commit()
	try:
		yield
	finally:
		for doctype, values in saved.items():
			restore_single(doctype, values, ("enabled",))


def _card(driver, label: str) -> str:
	for card in driver.find_elements(By_CSS(), ".number-widget-box"):
		if label.upper() in card.text.upper():
			numbers = card.find_elements(By_CSS(), ".number")
			return numbers[0].text.strip() if numbers else ""
	raise AssertionError(f"no card {label!r}")


def By_CSS():
	from selenium.webdriver.common.by import By

	return By.CSS_SELECTOR


def _workspace(driver, base: str) -> list:
	driver.get(base + "/app/spine")
	cards = wait_for(lambda: (c := driver.find_elements(By_CSS(), ".number-widget-box")) and len(c) >= 7 and c,
		60, what="the seven number cards")  # fmt: skip
	wait_for(lambda: all(c.find_elements(By_CSS(), ".number") for c in cards), 30, what="card numbers")
	return cards


def test_workspace_cards_read_plainly(desk, lag_unknown):
	driver, base, shots = desk
	cards = _workspace(driver, base)
	wait_for(
		lambda: _card(driver, "Consumer lag").startswith("unknown"), 30, what="the lag card's unknown state"
	)
	time.sleep(1)
	driver.save_screenshot(os.path.join(shots, "workspace-lag-unknown.png"))
	labels = " ".join(c.text for c in cards).upper()
	assert "SPINE" not in labels, "cards inside the Spine workspace do not repeat SPINE"
	for label in (
		"Pending inbound",
		"Pending outbound",
		"Errors",
		"Failed",
		"Processed last hour",
		"Oldest waiting",
		"Consumer lag",
	):
		assert label.upper() in labels, label
	assert _card(driver, "Consumer lag") == "unknown: broker unreachable"
	assert re.fullmatch(r"\d+( K)?", _card(driver, "Oldest waiting")), "whole minutes"
	errors = next(c for c in cards if "ERRORS" in c.text.upper()).find_elements(By_CSS(), ".number")[0]
	assert "color" not in (
		errors.get_attribute("style") or ""
	), "Errors is not painted red, whatever its value"


def test_workspace_charts_keep_colours_and_readable_hours(desk, nothing_consumed):
	driver, base, shots = desk
	_workspace(driver, base)
	wait_for(lambda: len(driver.find_elements(By_CSS(), ".chart-wrapper svg, .chart-container svg")) >= 1,
		60, what="the messages chart drawn")  # fmt: skip
	time.sleep(1.5)
	driver.save_screenshot(os.path.join(shots, "workspace.png"))
	legend = driver.execute_script(
		"""const out = {};
		for (const w of document.querySelectorAll('.widget.dashboard-widget-box')) {
			if (!w.innerText.includes('Messages per hour')) continue;
			for (const g of w.querySelectorAll('.chart-legend g, .legend-dataset, .graph-svg-tip')) {
				const text = (g.textContent || '').trim();
				const fill = g.querySelector('rect, circle, path');
				if (text && fill) out[text] = fill.getAttribute('fill');
			}
			out.__ticks = [...w.querySelectorAll('.x.axis text, .x-axis text, text.x-axis-label')].map(t => t.textContent);
			out.__empty = w.innerText.includes('No Data');
		}
		return out;"""
	)
	ticks = legend.pop("__ticks")
	legend.pop("__empty")
	assert (
		legend.get("Failed", "").lower() == "#dc2626" and legend.get("Processed", "").lower() == "#16a34a"
	), legend
	assert {"Pending", "Published", "Processed", "Error", "Failed", "Skipped", "Invalid"} <= set(
		legend
	), legend
	shown = [t for t in ticks if t.strip()]
	assert shown and not any("…" in t or "..." in t for t in shown), ticks
	assert all(re.fullmatch(r"\d\d:00", t) for t in shown), ticks
	lag_empty = driver.execute_script(
		"""for (const w of document.querySelectorAll('.widget.dashboard-widget-box'))
			if (w.innerText.includes('Consumer lag by topic')) return w.innerText.includes('No Data');
		return null;"""
	)
	assert lag_empty is True, "no configured topic: the lag chart says so instead of drawing an empty axis"


def test_sync_rule_form_previews_a_message_and_asks_for_an_initial_sync(desk, kafka_bootstrap):
	import frappe
	from selenium.webdriver.common.by import By
	from selenium.webdriver.common.keys import Keys

	from spine import envelope
	from tests.bench.helpers import site_kafka

	driver, base, shots = desk
	topic = unique("desk-sync")
	env = envelope.build(doctype="ToDo", docname="desk-sync-todo", event="on_update", topic=topic,
		payload={"name": "desk-sync-todo", "description": "from head office", "priority": "High"},
		origin="o", origin_site="head-office.example")  # fmt: skip
	stored = frappe.get_doc({"doctype": "Message Log", "direction": "Inbound", "status": "Processed",
		"message_id": env.message_id, "topic": topic, "kafka_key": env.key, "document_type": "ToDo",
		"document_name": "desk-sync-todo", "event": "on_update", "origin_site": "head-office.example",
		"message": envelope.encode(env).decode()})  # fmt: skip
	stored.db_insert()  # Message Log refuses saves from Desk code paths; intake writes it directly
	rule = frappe.get_doc({"doctype": "Spine Sync Rule", "title": topic, "topic": topic,
		"source_doctype": "ToDo", "enabled": 0}).insert(ignore_permissions=True)  # fmt: skip
	frappe.db.commit()
	try:
		with site_kafka(kafka_bootstrap):
			_open(driver, f"{base}/app/spine-sync-rule/{rule.name}", topic, shots, "sync-rule-form.png")
			assert (
				"Find the local document by" in driver.page_source
				and "Create documents missing here" in driver.page_source
			)

			def button(label: str):
				found = [b for b in driver.find_elements(By.CSS_SELECTOR, ".page-actions button, .page-actions a")
					if b.text.strip() == label and b.is_displayed()]  # fmt: skip
				return found[0] if found else None

			wait_for(lambda: button("Preview with a message"), 20, what="the Preview button").click()
			field = wait_for(lambda: [i for i in driver.find_elements(By.CSS_SELECTOR,
				".modal-dialog input[data-fieldname='message_log']") if i.is_displayed()], 20,
				what="the Message Log field")[0]  # fmt: skip
			field.send_keys(str(stored.name))
			time.sleep(1)  # the link field's own lookup
			field.send_keys(Keys.TAB)
			next(
				b
				for b in driver.find_elements(By.CSS_SELECTOR, ".modal-dialog .btn-primary")
				if b.is_displayed()
			).click()
			result = wait_for(lambda: " ".join(_texts(driver, ".modal-dialog .spine-preview-action")), 30,
				what=lambda: "the preview: " + driver.save_screenshot(os.path.join(shots, "sync-rule-preview-failed.png")) * "see sync-rule-preview-failed.png")  # fmt: skip
			table = " ".join(_texts(driver, ".modal-dialog table"))
			driver.save_screenshot(os.path.join(shots, "sync-rule-preview.png"))
			assert result.startswith("create") and "ToDo (new)" in result, result
			assert "description" in table and "from head office" in table, table
			assert not frappe.db.exists(
				"ToDo", {"description": "from head office"}
			), "a preview saves nothing"

			driver.get(f"{base}/app/spine-sync-rule/{rule.name}")
			wait_for(lambda: button("Initial sync"), 30, what="the Initial sync button").click()
			yes = wait_for(lambda: [b for b in driver.find_elements(By.CSS_SELECTOR, ".modal-dialog .btn-primary")
				if b.is_displayed() and b.text.strip() == "Yes"], 10, what="the confirmation")[0]  # fmt: skip
			time.sleep(0.5)  # as a person would: Bootstrap ignores hide() while the dialog is still fading in
			yes.click()
			answer = wait_for(lambda: [d.text for d in driver.find_elements(By.CSS_SELECTOR, ".modal-dialog")
				if d.is_displayed() and "Initial sync" in d.text and "answered" in d.text], 60,
				what="the initial sync answer")[0]  # fmt: skip
			wait_for(lambda: len([d for d in driver.find_elements(By.CSS_SELECTOR, ".modal-dialog") if d.is_displayed()]) == 1,
				10, what="the confirmation to fade out")  # fmt: skip
			driver.save_screenshot(os.path.join(shots, "sync-rule-initial-sync.png"))
			assert "No site answered within 5 s" in answer and "spine-backfill" in answer, answer
	finally:
		frappe.delete_doc("Spine Sync Rule", rule.name, ignore_permissions=True, force=True)
		frappe.db.delete("Message Log", {"topic": topic})
		frappe.db.commit()
