"""Spine Consumer Config got a master switch ("Enabled"): sites that were consuming keep consuming."""

import frappe


def execute() -> None:
	saved = frappe.db.sql(
		"SELECT field FROM `tabSingles` WHERE doctype = 'Spine Consumer Config'", pluck=True
	)
	if saved and "enabled" not in saved:  # configured before the switch existed; a new site gets the default
		frappe.db.set_single_value("Spine Consumer Config", "enabled", 1)
