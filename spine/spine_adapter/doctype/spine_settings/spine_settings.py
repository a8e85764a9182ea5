"""Spine Settings' controller: this site's signing key and the site-wide switches."""

import frappe
from frappe.model.document import Document


class SpineSettings(Document):
	# begin: auto-generated types
	# end: auto-generated types

	def validate(self):
		if self.keep_done_days is not None and self.keep_done_days < 1:
			frappe.throw("Keep Published, Processed and Skipped entries: at least 1 day")
		if self.keep_failed_days is not None and self.keep_failed_days < 1:
			frappe.throw("Keep Failed and Invalid entries: at least 1 day")
		if self.purge_batch_size is not None and not 100 <= self.purge_batch_size <= 50_000:
			frappe.throw("Delete at most this many rows per statement: choose between 100 and 50,000")

	@frappe.whitelist()
	def rotate_signing_key(self) -> str:
		"""Desk button: a new signing key, endorsed by the current one, published on spine.keys."""
		frappe.only_for("System Manager")
		from spine.producer import signing_key

		return signing_key.rotate()

	@frappe.whitelist()
	def publish_signing_key(self) -> None:
		"""Desk button: publish the current public key on spine.keys again (for a site that joined later)."""
		frappe.only_for("System Manager")
		from spine.producer import signing_key

		signing_key.publish_key()
