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
