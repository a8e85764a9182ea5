import frappe
from frappe.model.document import Document


class SpineDocumentMap(Document):
	# begin: auto-generated types
	# end: auto-generated types
	pass


def on_doctype_update():
	"""One entry per document of another site: (origin site, local DocType, remote name)."""
	frappe.db.add_unique(
		"Spine Document Map",
		["origin_site", "document_type", "remote_name"],
		constraint_name="unique_remote_document",
	)
	frappe.db.add_index("Spine Document Map", ["document_type", "local_name"])
