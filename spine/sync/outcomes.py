"""What applying a sync rule to a message can come to, besides a write: the processor acts on each."""

from __future__ import annotations

from spine.errors import PermanentHandlerError, SkipMessage, SpineError


class SyncSkipped(SkipMessage):
	"""The message changes nothing here; ``reason`` says why."""


class SyncWaiting(SpineError):
	"""A document the message links to is not here yet (``waiting_for`` = ``DocType:name``)."""

	def __init__(self, waiting_for: str, reason: str):
		super().__init__(reason)
		self.waiting_for = waiting_for


class SyncFailed(PermanentHandlerError):
	"""Frappe refused the mapped document; the message says why and what was mapped."""
