"""Spine Payload Schema's controller: the schemas received or published, one per topic, DocType and version."""

import frappe
from frappe.model.document import Document


class SpinePayloadSchema(Document):
	# begin: auto-generated types
	# end: auto-generated types

	def validate(self):
		frappe.throw(
			"Payload schemas are written by Spine; change the producer's route instead.", title="Read-only"
		)


def on_doctype_update():
	"""One record per topic, DocType, version and direction."""
	frappe.db.add_unique(
		"Spine Payload Schema",
		["topic", "document_type", "version", "direction"],
		constraint_name="unique_payload_schema",
	)
