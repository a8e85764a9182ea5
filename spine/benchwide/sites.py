"""The sites of a bench as a bench-wide Spine process sees them: which it serves now, and why not
the others.

Read from the sites folder only (each site_config.json merged with common_site_config.json, and
the lock ``bench migrate`` holds), never from a site's database: a scan is cheap enough to run
every couple of seconds, so a site added, dropped, paused or reconfigured is followed at once.
Whether Spine is installed is a database question; the site's own task answers it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import dataclass

import frappe
from filelock import FileLock, Timeout

# Frappe's migrate holds this file lock (frappe.utils.synchronization.filelock("bench_migrate"))
MIGRATE_LOCK = os.path.join("locks", "bench_migrate.lock")


@dataclass(frozen=True)
class SiteView:
	"""One site: ``reason`` says why it is not served now (empty when it is); ``settings_key``
	changes whenever its kafka block does, so its task is restarted with the new settings."""

	site: str
	reason: str = ""
	settings_key: str = ""

	@property
	def servable(self) -> bool:
		return not self.reason


def scan(sites_path: str = ".", only: Collection[str] = ()) -> dict[str, SiteView]:
	"""Every site of the bench (those of ``only`` if given, even ones that do not exist, with that
	reason), by name. Never raises for one site's problem: that site's view says it."""
	names = frappe.utils.get_sites(sites_path)
	views = {site: view(sites_path, site) for site in names if not only or site in only}
	for site in only:
		views.setdefault(site, SiteView(site, f"no site {site} in {os.path.abspath(sites_path)}"))
	return views


def view(sites_path: str, site: str) -> SiteView:
	"""What a bench-wide process should do with ``site`` now."""
	site_path = os.path.join(sites_path, site)
	try:
		conf = frappe.get_site_config(sites_path=sites_path, site_path=site_path)
	except BaseException as e:  # Frappe exits on a broken site_config.json; one site must not stop the scan
		return SiteView(site, f"its site_config.json cannot be read ({e})")
	if conf.get("maintenance_mode"):
		return SiteView(site, "it is in maintenance mode (served again when maintenance_mode is 0)")
	if migrating(site_path):
		return SiteView(site, "bench migrate is running on it (served again when it ends)")
	kafka = conf.get("kafka")
	if not kafka:
		return SiteView(site, "it has no kafka block in site_config.json")
	return SiteView(site, "", json.dumps(kafka, sort_keys=True, default=str))


def migrating(site_path: str) -> bool:
	"""Whether ``bench migrate`` holds the site's migrate lock now."""
	path = os.path.join(site_path, MIGRATE_LOCK)
	if not os.path.exists(path):
		return False
	try:
		with FileLock(path, timeout=0):
			return False
	except Timeout:
		return True
	except OSError:
		return False  # not ours to read: assume no migrate rather than stop serving the site
