from frappe.model.document import Document


class SpineSyncField(Document):
	# begin: auto-generated types
	# end: auto-generated types
	pass
