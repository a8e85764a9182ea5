import frappe
from frappe.model.document import Document


class SpineConsumerOffset(Document):
	# begin: auto-generated types
	# end: auto-generated types
	pass


def on_doctype_update():
	"""One position per (consumer group, topic, partition)."""
	frappe.db.add_unique(
		"Spine Consumer Offset",
		["consumer_group", "topic", "kafka_partition"],
		constraint_name="unique_group_partition",
	)
