import frappe
from frappe.model.document import Document


class SpineTrustedSite(Document):
	# begin: auto-generated types
	# end: auto-generated types

	def validate(self) -> None:
		from spine.settings import trusted_keys

		trusted_keys.validate_row(self)


def on_doctype_update():
	frappe.db.add_index("Spine Trusted Site", ["key_id"])
	frappe.db.add_index("Spine Trusted Site", ["site", "fingerprint"])
