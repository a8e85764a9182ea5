"""Install, migrate and uninstall steps that Frappe's own app lifecycle does not do for Spine."""

import frappe
from frappe.utils.password import delete_all_passwords_for

from spine import compat, logs
from spine.producer import signing_key
from spine.settings import config_cache

SINGLE_DOCTYPES = ("Spine Producer Config", "Spine Consumer Config", "Spine Settings")
MODULE = "Spine Adapter"

log = logs.logger(__name__)


def after_install() -> None:
	"""Desk settings that suit a log (no comment counts in the Message Log list), and the site's
	signing key (published on spine.keys; signing on)."""
	_quiet_message_log_list()
	signing_key.ensure_key()


def _quiet_message_log_list() -> None:
	if not frappe.db.exists("List View Settings", "Message Log"):
		frappe.get_doc(
			{"doctype": "List View Settings", "name": "Message Log", "disable_comment_count": 1}
		).insert(ignore_permissions=True)


def after_migrate() -> None:
	"""Repair what a failed install or a dropped table left behind: every Spine DocType has its table.

	``bench migrate`` re-imports only DocTypes whose JSON changed, so a table that is gone while
	its DocType record stays would never come back on its own.
	"""
	for name in frappe.get_all("DocType", {"module": MODULE, "issingle": 0}, pluck="name"):
		if not frappe.db.table_exists(name):
			log.warning("Spine: table of %s is missing on %s; creating it again", name, frappe.local.site)
			frappe.reload_doc(frappe.scrub(MODULE), "doctype", frappe.scrub(name), force=True)
	_quiet_message_log_list()
	signing_key.ensure_key()  # a site upgraded from a release without signing gets its key now
	_forget_cached_config()


def before_uninstall() -> None:
	"""Leave nothing of Spine behind that Frappe's uninstall does not remove itself.

	Frappe drops the tables and DocTypes but keeps the singles' values in tabSingles and the
	Redis keys of earlier releases. (Done before, not after, uninstall: Frappe commits only after the
	``before_uninstall`` hooks.)
	"""
	frappe.db.delete("Singles", {"doctype": ("in", SINGLE_DOCTYPES)})
	for single in SINGLE_DOCTYPES:  # the signing key, kept in Frappe's encrypted store
		delete_all_passwords_for(single, single)
	frappe.db.delete("List View Settings", {"name": "Message Log"})
	_forget_cached_config()


def _forget_cached_config() -> None:
	"""This process's copies, and what the first releases cached in Redis (nothing reads it now)."""
	config_cache.forget()
	compat.cache().delete_value(list(config_cache.LEGACY_REDIS_KEYS))
