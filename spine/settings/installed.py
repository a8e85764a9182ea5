"""Whether Spine is installed on the current site (a bench-wide process meets sites without it)."""

from __future__ import annotations

import frappe

from spine.errors import SiteNotServed


def require_spine() -> None:
	"""Return if Spine is installed on the current site; else raise ``SiteNotServed`` saying so."""
	if "spine" not in frappe.get_installed_apps():
		raise SiteNotServed(
			f"Spine is not installed on it (bench --site {frappe.local.site} install-app spine)"
		)
