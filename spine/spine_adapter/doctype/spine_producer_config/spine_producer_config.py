"""Spine Producer Config's controller: checks on save, schemas shown, and the dispatchers told after it."""

import frappe
from frappe.model.document import Document

from spine.producer import shape
from spine.settings import broker, validation


class SpineProducerConfig(Document):
	# begin: auto-generated types
	# end: auto-generated types

	def validate(self):
		for row in self.configs:
			if not frappe.db.exists("DocType", row.document_type):
				frappe.throw(f"Row {row.idx}: DocType {row.document_type!r} does not exist on this site")
			validation.check_topic(row)
			validation.check_wire_format(row)
			if row.event_handler:
				validation.check_handlers(row, [row.event_handler.strip()])
			if problem := shape.check_condition(row.document_type, row.condition):
				frappe.throw(
					f"Row {row.idx}: the condition cannot be evaluated on a {row.document_type} ({problem}). "
					'Write a Python expression using doc, e.g. doc.status == "Open"',
					title="Invalid condition",
				)
			if problem := shape.check_fields(row.document_type, row.published_fields):
				frappe.throw(
					f"Row {row.idx}: {problem}; list fields of {row.document_type}", title="Invalid field"
				)
		validation.check_unique(self.configs, ("document_type", "topic"), "same DocType and topic")

	def onload(self):
		self.set_onload("broker", broker.describe())

	def on_update(self):
		# a site that publishes reads requests for an initial sync: its dispatchers follow that topic
		broker.ring_config_bell_after_commit()
