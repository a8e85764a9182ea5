from frappe.model.document import Document


class SpineProducerHandlerMapping(Document):
	# begin: auto-generated types
	# end: auto-generated types
	pass
