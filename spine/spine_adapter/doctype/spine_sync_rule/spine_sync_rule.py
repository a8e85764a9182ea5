"""Spine Sync Rule's controller: checks on save (``spine.sync.rules``), Preview and Initial sync buttons."""

import frappe
from frappe.model.document import Document

from spine.settings import broker
from spine.sync import rules


class SpineSyncRule(Document):
	# begin: auto-generated types
	# end: auto-generated types

	def validate(self):
		for problem in rules.problems(self.as_dict()):
			frappe.throw(problem, title="Sync rule cannot work")

	def on_change(self):
		broker.ring_config_bell_after_commit()  # the site's dispatchers follow its topic at once

	def on_trash(self):
		broker.ring_config_bell_after_commit()

	@frappe.whitelist()
	def preview(self, message_log: int) -> dict:
		"""Desk: what this rule would do with a stored message, without saving anything."""
		frappe.only_for("System Manager")
		from spine.sync import apply

		return apply.preview(self.as_dict(), int(message_log))

	@frappe.whitelist()
	def request_initial_sync(self) -> dict:
		"""Desk: ask the producing sites to publish their existing documents of the source DocType."""
		frappe.only_for("System Manager")
		from spine.sync import initial

		return initial.request(self.as_dict())
