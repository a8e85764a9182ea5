"""Spine Consumer Config's controller: checks on save (``spine.settings.validation``) and the dispatchers told after it."""

import frappe
from frappe.model.document import Document

from spine.retry import RetryPolicy
from spine.settings import broker, validation


class SpineConsumerConfig(Document):
	# begin: auto-generated types
	# end: auto-generated types

	def validate(self):
		for row in self.configs:
			validation.check_topic(row)
			paths = validation.handler_paths(row.event_handler)
			if not paths:
				frappe.throw(f"Row {row.idx}: list at least one handler path (comma-separated)")
			validation.check_handlers(row, paths)
		validation.check_unique(self.configs, ("topic", "document_type"), "same topic and DocType")
		try:
			RetryPolicy(self.max_attempts, self.retry_backoff_seconds, self.retry_backoff_max_seconds)
		except ValueError as e:
			frappe.throw(f"Retries: {e}")

	def onload(self):
		self.set_onload("broker", broker.describe())

	def on_update(self):
		broker.ring_config_bell_after_commit()  # the site's dispatchers follow new topics at once
