import frappe
from frappe.model.document import Document

from spine.retry import RetryPolicy
from spine.spine_adapter import config_cache, config_rules


class SpineConsumerConfig(Document):
	# begin: auto-generated types
	# end: auto-generated types

	def validate(self):
		for row in self.configs:
			config_rules.check_topic(row)
			paths = config_rules.handler_paths(row.event_handler)
			if not paths:
				frappe.throw(f"Row {row.idx}: list at least one handler path (comma-separated)")
			config_rules.check_handlers(row, paths)
		config_rules.check_unique(self.configs, ("topic", "document_type"), "same topic and DocType")
		try:
			RetryPolicy(self.max_attempts, self.retry_backoff_seconds, self.retry_backoff_max_seconds)
		except ValueError as e:
			frappe.throw(f"Retries: {e}")

	def clear_cache(self):
		config_cache.forget_after_commit(config_cache.CONSUMER_ROUTES_KEY)
		return super().clear_cache()
