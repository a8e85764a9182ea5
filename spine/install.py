"""Install and uninstall steps that Frappe's own app lifecycle does not do for Spine."""

import frappe

from spine.settings import config_cache

SINGLE_DOCTYPES = ("Spine Producer Config", "Spine Consumer Config", "Spine Settings")


def before_uninstall() -> None:
	"""Leave nothing of Spine behind that Frappe's uninstall does not remove itself.

	Frappe drops the tables and DocTypes but keeps the singles' values in tabSingles and the
	cached config in Redis. (Done before, not after, uninstall: Frappe commits only after the
	``before_uninstall`` hooks.)
	"""
	frappe.db.delete("Singles", {"doctype": ("in", SINGLE_DOCTYPES)})
	config_cache.forget()
