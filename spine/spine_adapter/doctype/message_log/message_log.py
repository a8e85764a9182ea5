import frappe
from frappe.model.document import Document


class MessageLog(Document):
	# begin: auto-generated types
	# end: auto-generated types
	pass


def on_doctype_update():
	"""Indexes for the relay's and processor's queries, so they stay fast with millions of rows."""
	# due work: WHERE direction=? AND status=? AND next_attempt_at <= now ORDER BY name
	frappe.db.add_index("Message Log", ["direction", "status", "next_attempt_at"])
	# per-document order: is there an earlier unfinished entry with this key?
	frappe.db.add_index("Message Log", ["kafka_key", "status"])
