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


class RequestTimeout(SpineError):
	"""``spine.request``: no reply within the timeout (no responder, or it was too slow)."""


class RemoteError(SpineError):
	"""``spine.request``: the responder raised. ``error_type`` and ``error_message`` are its own;
	``site`` is the site that answered."""

	def __init__(self, error_type: str, error_message: str, site: str | None = None):
		super().__init__(f"{error_type} on {site or 'the responder'}: {error_message}")
		self.error_type = error_type
		self.error_message = error_message
		self.site = site


class SkipMessage(SpineError):
	"""Raised while handling a message to say: nothing to do, store it as Skipped with ``reason``."""

	def __init__(self, reason: str):
		super().__init__(reason)
		self.reason = reason


class SiteNotServed(SpineError):
	"""A bench-wide process has nothing to do on a site (Spine is not installed there); it looks again."""


class ConsumerFatalError(SpineError):
	"""The Kafka consumer stopped for good (librdkafka's fatal error, e.g. another process took its
	``group.instance.id``); the message says which member and what to check. Its process or site
	task stops and is started again by whoever supervises it."""
