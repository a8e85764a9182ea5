"""A small client of a schema registry's Confluent-compatible REST API, on the standard library (no
dependency that could move a Frappe pin). Plain Python.

What Spine needs of a registry: register a subject's schema (``register``), set a subject's
compatibility (``set_compatibility``), read a schema by id (``schema``). Each answer it can act on is
its own exception: the registry refused the schema (``Refused``: incompatible, invalid), it does not
know an id (``UnknownSchema``), or it did not answer (``Unavailable``). Registered ids and fetched
schemas are kept per process (an id never changes meaning).
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import urllib.error
import urllib.request
from typing import Any

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
COMPATIBILITY_LEVELS = (
	"BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE",
)  # fmt: skip


class RegistryError(Exception):
	"""A registry's answer Spine cannot go on with; ``str()`` says what and what to do."""


class Refused(RegistryError):
	"""The registry refused a schema for a subject (incompatible with its versions, or invalid)."""


class UnknownSchema(RegistryError):
	"""The registry has no schema of that id."""


class Unavailable(RegistryError):
	"""The registry did not answer (or answered with a server error)."""


class RegistryClient:
	"""The registry at ``settings["url"]`` (``basic.auth.user.info`` ``user:password``; ``ssl.ca.location``,
	``ssl.certificate.location``, ``ssl.key.location`` for TLS)."""

	def __init__(self, settings: dict[str, str], timeout: float = 10.0):
		self.url = settings["url"].rstrip("/")
		self.timeout = timeout
		self._auth = None
		if settings.get("basic.auth.user.info"):
			self._auth = "Basic " + base64.b64encode(settings["basic.auth.user.info"].encode()).decode()
		self._context = None
		if self.url.startswith("https:"):
			self._context = ssl.create_default_context(cafile=settings.get("ssl.ca.location") or None)
			if settings.get("ssl.certificate.location"):
				self._context.load_cert_chain(
					settings["ssl.certificate.location"], settings.get("ssl.key.location")
				)
		self._ids: dict[tuple[str, str], int] = {}
		self._schemas: dict[int, tuple[str, str]] = {}
		self._lock = threading.Lock()

	def register(self, subject: str, schema: str, schema_type: str = "JSON") -> int:
		"""The id of ``schema`` under ``subject``, registering it as the subject's next version when it is
		new; raises ``Refused`` when the registry finds it incompatible (or invalid)."""
		key = (subject, schema)
		if key in self._ids:
			return self._ids[key]
		body: dict[str, Any] = {"schema": schema}
		if schema_type != "AVRO":
			body["schemaType"] = schema_type
		answer = self._call("POST", f"/subjects/{_quote(subject)}/versions", body)
		with self._lock:
			self._ids[key] = int(answer["id"])
		return self._ids[key]

	def set_compatibility(self, subject: str, level: str) -> None:
		"""Set ``subject``'s compatibility level (``COMPATIBILITY_LEVELS``)."""
		if level not in COMPATIBILITY_LEVELS:
			raise ValueError(f"compatibility {level!r} is not one of {', '.join(COMPATIBILITY_LEVELS)}")
		self._call("PUT", f"/config/{_quote(subject)}", {"compatibility": level})

	def compatibility(self, subject: str) -> str | None:
		"""The subject's own compatibility level, or None when it has none (the registry's default)."""
		try:
			answer = self._call("GET", f"/config/{_quote(subject)}")
		except (UnknownSchema, Refused):
			return None
		return answer.get("compatibilityLevel") or answer.get("compatibility")

	def schema(self, schema_id: int) -> tuple[str, str]:
		"""(schema type: JSON / AVRO / PROTOBUF, schema text) of ``schema_id``."""
		if schema_id in self._schemas:
			return self._schemas[schema_id]
		answer = self._call("GET", f"/schemas/ids/{int(schema_id)}")
		found = (answer.get("schemaType") or "AVRO", answer["schema"])
		with self._lock:
			self._schemas[schema_id] = found
		return found

	def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
		request = urllib.request.Request(
			self.url + path,
			data=json.dumps(body).encode() if body is not None else None,
			method=method,
			headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
		)
		if self._auth:
			request.add_header("Authorization", self._auth)
		try:
			with urllib.request.urlopen(request, timeout=self.timeout, context=self._context) as answer:
				text = answer.read()
		except urllib.error.HTTPError as e:
			raise _error(e, method, self.url + path) from None
		except (urllib.error.URLError, OSError, TimeoutError) as e:
			raise Unavailable(f"the schema registry at {self.url} did not answer ({_reason(e)})") from None
		return json.loads(text) if text else {}


def _error(e: urllib.error.HTTPError, method: str, url: str) -> RegistryError:
	try:
		detail = json.loads(e.read() or b"{}")
	except ValueError:
		detail = {}
	code, message = detail.get("error_code", e.code), detail.get("message") or e.reason
	if e.code == 404:
		return UnknownSchema(f"the schema registry has no such schema or subject ({code}: {message})")
	if e.code in (409, 422):
		return Refused(f"the schema registry refused the schema ({code}: {message})")
	if e.code in (401, 403):
		return Refused(
			f"the schema registry refused the credentials ({code}: {message}); check "
			'"spine.schema.registry.basic.auth.user.info" in the kafka block'
		)
	return Unavailable(f"the schema registry answered {e.code} to {method} {url} ({message})")


def _reason(e: BaseException) -> str:
	return str(getattr(e, "reason", None) or e)


def _quote(subject: str) -> str:
	return urllib.request.quote(subject, safe="")
