"""Desk in a real headless browser: Spine's forms, the Message Log list and form, Retry from the list.

Needs a bench with built assets, Debian's chromium and chromedriver, and selenium; otherwise
skipped with the reason. Screenshots go to SPINE_SCREENSHOTS (default: a temporary folder).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time

import pytest

from tests.bench.helpers import BenchProcess, unique, wait_for

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _missing() -> str | None:
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
	import frappe
	from selenium import webdriver
	from selenium.webdriver.chrome.options import Options
	from selenium.webdriver.chrome.service import Service
	from selenium.webdriver.common.by import By

	if not frappe.get_system_settings("setup_complete"):  # a fresh test site would show the setup wizard
		frappe.db.set_single_value("System Settings", "setup_complete", 1)
		frappe.db.commit()
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


def test_forms_and_log_render(desk):
	from selenium.webdriver.common.by import By

	driver, base, shots = desk
	_open(driver, base + "/app/spine-producer-config", "Spine Producer Config", shots, "producer-config.png")
	assert "Check connection" in driver.page_source
	button = [
		b
		for b in driver.find_elements(By.CSS_SELECTOR, ".page-actions button")
		if b.text.strip() == "Check connection"
	]
	button[0].click()
	wait_for(
		lambda: any(
			"Kafka connection" in t.text for t in driver.find_elements(By.CSS_SELECTOR, ".modal-title")
		),
		30,
		what="the Check connection dialog",
	)
	driver.save_screenshot(os.path.join(shots, "check-connection.png"))
	_open(driver, base + "/app/spine-consumer-config", "Spine Consumer Config", shots, "consumer-config.png")
	assert "Max attempts" in driver.page_source
	import frappe

	from tests.bench.test_operations import _insert

	topic = unique("desk-list")  # explicit filter: Desk remembers a user's last list filters
	for status in ("Processed", "Error", "Invalid"):
		_insert("Inbound", status, topic)
	frappe.db.commit()
	try:
		_open(driver, f"{base}/app/message-log?topic={topic}", "Message Log", shots, "message-log-list.png")

		def pills():
			found = driver.find_elements(By.CSS_SELECTOR, ".list-row .indicator-pill")
			return found if len(found) >= 3 else None

		colours = {
			p.text.strip(): p.get_attribute("class") for p in wait_for(pills, 30, what="status indicators")
		}
		assert (
			"green" in colours["Processed"] and "red" in colours["Error"] and "purple" in colours["Invalid"]
		)
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
		time.sleep(1)
		driver.save_screenshot(os.path.join(shots, "message-log-after-retry.png"))
	finally:
		frappe.db.delete("Message Log", {"topic": topic})
		frappe.db.commit()


def test_spine_workspace_shows_cards_and_charts(desk):
	from selenium.webdriver.common.by import By

	driver, base, shots = desk
	driver.get(base + "/app/spine")
	cards = wait_for(
		lambda: (c := driver.find_elements(By.CSS_SELECTOR, ".number-widget-box")) and len(c) >= 7 and c,
		60,
		what="the seven number cards",
	)
	wait_for(lambda: all(c.find_elements(By.CSS_SELECTOR, ".number") for c in cards), 30, what="card numbers")
	wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, ".chart-wrapper svg, .chart-container svg")) >= 2,
		60, what="both charts drawn")  # fmt: skip
	time.sleep(1)
	driver.save_screenshot(os.path.join(shots, "workspace.png"))
	labels = " ".join(c.text for c in cards).upper()  # Desk shows card labels in capitals
	for label in (
		"Pending Inbound",
		"Pending Outbound",
		"Errors",
		"Failed",
		"Processed Last Hour",
		"Consumer Lag",
	):
		assert label.upper() in labels, label
