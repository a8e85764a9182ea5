"""Spine's exception tree. Plain Python: importing it never imports Frappe."""

from __future__ import annotations


class SpineError(Exception):
	"""Base class of every error Spine raises on purpose."""


class KafkaConfigError(SpineError):
	"""The site_config ``kafka`` block cannot be turned into client settings.

	The message says which key is wrong and what to write instead; it never contains a secret.
	"""


class MalformedMessage(SpineError):
	"""A Kafka message that is not a Spine (or original Spine Adapter) envelope.

	``reason`` is a one-line explanation an operator can read in Message Log.
	"""

	def __init__(self, reason: str):
		super().__init__(reason)
		self.reason = reason


class HandlerConfigError(SpineError):
	"""A configured handler path is not an importable callable of an installed app."""


class PermanentHandlerError(SpineError):
	"""Raised by a consumer handler to say: do not retry this message, mark it Failed now."""


class BrokerUnavailable(SpineError):
	"""The Kafka broker named in site_config does not answer; the message says where and what to run."""
