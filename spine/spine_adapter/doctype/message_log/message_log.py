"""Message Log's controller: Desk's Retry/Replay/Republish (delegated to ``spine.desk.actions``), old-log clearing, and the table's indexes."""

import frappe
from frappe.model.document import Document


class MessageLog(Document):
	# begin: auto-generated types
	# end: auto-generated types

	def validate(self):
		# Spine writes Message Log with SQL; a save through Desk or the API would let anyone turn
		# Failed into Processed by hand. Status changes go through the actions, which note who did what.
		frappe.throw(
			"Message Log entries are read-only. Use Retry, Replay or Republish to change what happens next.",
			title="Read-only log",
		)

	@frappe.whitelist()
	def run_action(self, action: str) -> dict:
		"""Desk button: Retry / Replay / Republish this entry."""
		frappe.only_for("System Manager")
		from spine.desk import actions

		return actions.apply(action, [self.name])


@frappe.whitelist()
def bulk_action(action: str, names: str | list) -> dict:
	"""Desk list action: Retry / Replay / Republish the selected entries."""
	frappe.only_for("System Manager")
	from spine.desk import actions

	return actions.apply(action, frappe.parse_json(names) if isinstance(names, str) else names)


def on_doctype_update():
	"""Indexes for the relay's and processor's queries, so they stay fast with millions of rows."""
	# due work: WHERE direction=? AND status=? AND next_attempt_at <= now ORDER BY name
	frappe.db.add_index("Message Log", ["direction", "status", "next_attempt_at"])
	# handled once: a redelivered message is dropped by INSERT IGNORE. Per direction, so a site
	# that consumes its own topic (test mode) can hold both copies of one message.
	frappe.db.add_unique(
		"Message Log", ["message_id", "direction"], constraint_name="unique_message_id_direction"
	)
	# per-document order: is there an earlier unfinished entry with this key?
	frappe.db.add_index("Message Log", ["kafka_key", "status"])
	# request/reply: a request and its replies, side by side
	frappe.db.add_index("Message Log", ["correlation_id"])
	# sync: wake the entries waiting for a document when it arrives
	frappe.db.add_index("Message Log", ["waiting_for", "status"])
	# retention purge and the "last hour" cards: WHERE status IN (...) AND modified < cutoff
	frappe.db.add_index("Message Log", ["status", "modified"])
