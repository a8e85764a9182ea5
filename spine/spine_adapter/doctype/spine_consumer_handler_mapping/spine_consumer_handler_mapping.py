from frappe.model.document import Document


class SpineConsumerHandlerMapping(Document):
	# begin: auto-generated types
	# end: auto-generated types
	pass
