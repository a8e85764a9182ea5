"""The jsonworkers' RQ queue as the site sees it: its bench-namespaced name and a JSON handle on it."""

from __future__ import annotations

from rq import Queue


def queue_name(queue: str) -> str:
	"""The bench-namespaced RQ queue name, as Frappe names its own (``<bench id>:spine:<queue>``)."""
	from frappe.utils.background_jobs import generate_qname

	return generate_qname(f"spine:{queue}")


def json_queue(name: str) -> Queue:
	"""The already-namespaced JSON queue ``name`` on the bench's queue Redis."""
	from frappe.utils.background_jobs import get_redis_conn

	from spine.kafka.handover import json_queue as make

	return make(name, get_redis_conn())
