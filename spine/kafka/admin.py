"""Broker checks for the config forms: does the broker answer, which topics exist; create missing ones.

Plain Python: never imports Frappe.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from spine.kafka import broker_errors


class ConnectionErrors:
	"""What librdkafka reports while a client connects (its ``error_cb``), so a failure can say why: a
	refused login (SASL) or a failed TLS handshake (an unknown CA, an expired certificate) rather
	than "did not answer"."""

	def __init__(self) -> None:
		self.refusal: str | None = None

	def watch(self, conf: dict[str, Any]) -> dict[str, Any]:
		"""``conf`` with this watch as its ``error_cb``."""
		return {**conf, "error_cb": self._on_error}

	def _on_error(self, err: KafkaError) -> None:
		kind = broker_errors.classify(err)
		if kind == broker_errors.LOGIN:
			self.refusal = f"the broker refused the login: {_first_part(err.str())}"
		elif kind == broker_errors.TLS:
			self.refusal = f"the TLS handshake failed: {_first_part(err.str())}"

	def explain(self, error: Any, conf: dict[str, Any] | None = None) -> str:
		"""Why the client got ``error``: the refusal seen (for a failed TLS handshake, what is wrong
		with the broker's certificate, given the client's ``conf``), else the error's own text."""
		if self.refusal:
			if conf and "TLS handshake" in self.refusal and (found := certificate_problem(conf)):
				return f"the TLS handshake failed: {found}"
			return self.refusal
		return f"the broker did not answer: {getattr(error, 'str', lambda: error)()}"


def certificate_problem(conf: dict[str, Any], timeout: float = 5) -> str | None:
	"""What is wrong with the certificate the first bootstrap server presents, read without verifying
	it: expired, not yet valid, or not signed by the CA in ``ssl.ca.location``; None if nothing found
	(or it cannot be read)."""
	import datetime
	import socket
	import ssl

	from cryptography import x509

	host, _, port = str(conf.get("bootstrap.servers", "")).split(",")[0].strip().rpartition(":")
	if not host or not port.isdigit():
		return None
	context = ssl.create_default_context()
	context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
	try:
		with socket.create_connection((host, int(port)), timeout=timeout) as raw:
			with context.wrap_socket(raw, server_hostname=host) as tls:
				cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
	except (OSError, ValueError):
		return None
	now = datetime.datetime.now(datetime.timezone.utc)
	subject = cert.subject.rfc4514_string()
	if cert.not_valid_after_utc < now:
		return (
			f"the broker's certificate ({subject}) expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
		)
	if cert.not_valid_before_utc > now:
		return f"the broker's certificate ({subject}) is valid only from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
	ca_file = conf.get("ssl.ca.location")
	if ca_file:
		try:
			with open(ca_file, "rb") as f:
				cas = x509.load_pem_x509_certificates(f.read())
		except (OSError, ValueError):
			return f'"ssl.ca.location" ({ca_file}) cannot be read as PEM certificates'
		if cert.issuer not in {ca.subject for ca in cas}:
			return (
				f"the broker's certificate ({subject}) is issued by {cert.issuer.rfc4514_string()}, "
				f'which is not a CA in "ssl.ca.location" ({ca_file})'
			)
	return None


def _first_part(text: str) -> str:
	"""librdkafka's error text without its connection-state suffix (``(after 5ms in state ...)``)."""
	return text.split(" (after ")[0].strip()


def check(admin_conf: dict[str, Any], topics: Iterable[str], timeout: float = 5) -> dict[str, Any]:
	"""``{"ok", "brokers", "error", "topics": [{"topic", "exists", "partitions"}]}`` — never raises.
	``error`` says whether the broker did not answer, refused the login, or failed the TLS handshake."""
	wanted = sorted(set(topics))
	errors = ConnectionErrors()
	client = AdminClient(errors.watch(admin_conf))
	try:
		meta = client.list_topics(timeout=timeout)
	except KafkaException as e:
		err = e.args[0] if e.args else e
		client.poll(0)  # librdkafka queues its error callbacks until the client is polled
		return {"ok": False, "brokers": 0, "error": errors.explain(err, admin_conf),
			"topics": [{"topic": t, "exists": None, "partitions": None} for t in wanted]}  # fmt: skip
	found = meta.topics
	return {
		"ok": True,
		"brokers": len(meta.brokers),
		"error": None,
		"topics": [
			{"topic": t, "exists": t in found and found[t].error is None,
				"partitions": len(found[t].partitions) if t in found and found[t].error is None else None}
			for t in wanted
		],
	}  # fmt: skip


def create_topics(
	admin_conf: dict[str, Any],
	topics: Iterable[str],
	partitions: int = -1,
	replication: int = -1,
	timeout: float = 15,
	config: dict[str, str] | None = None,
) -> dict[str, str | None]:
	"""Create ``topics`` (with topic ``config``, e.g. ``{"cleanup.policy": "compact"}``; ``-1``
	partitions or replication: the cluster's ``num.partitions`` / ``default.replication.factor``);
	returns ``{topic: None}`` on success or ``{topic: error text}`` (exists counts as success). Never
	raises: a broker that does not answer (or refuses the login) is an error text for every topic."""
	admin = AdminClient(admin_conf)
	futures = admin.create_topics(
		[NewTopic(t, partitions, replication, config=config or {}) for t in sorted(set(topics))],
		request_timeout=timeout,
	)
	results: dict[str, str | None] = {}
	for topic, future in futures.items():
		try:
			future.result(timeout + 1)
			results[topic] = None
		except KafkaException as e:
			err = e.args[0] if e.args else None
			already = err is not None and err.code() == err.TOPIC_ALREADY_EXISTS
			results[topic] = None if already else (broker_errors.describe(err) if err is not None else str(e))
		except Exception as e:  # the future's own timeout: no answer at all
			results[topic] = f"no answer from the broker within {timeout:g}s ({type(e).__name__})"
	return results


@dataclass(frozen=True)
class ExistingTopic:
	"""What is true of a topic Spine could not create: ``matches`` is whether its configuration has the
	values Spine needs (None: it could not be read); ``text`` says so for the log."""

	matches: bool | None
	text: str


def existing_topic(
	admin_conf: dict[str, Any], topic: str, wanted: dict[str, str], timeout: float = 10
) -> ExistingTopic | None:
	"""After Spine could not create its own ``topic`` (a principal without the Create ACL is refused
	even where the topic exists): None when it does not exist (or the broker does not say), otherwise
	its ``wanted`` settings as the broker reads them back (DescribeConfigs). Never raises."""
	from confluent_kafka.admin import ConfigResource

	admin = AdminClient(admin_conf)
	try:  # all topics: asking for this one by name would make the broker auto-create it
		meta = admin.list_topics(timeout=timeout).topics.get(topic)
	except KafkaException:
		return None
	if meta is None or meta.error is not None:
		return None
	try:
		(future,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
		entries = future.result(timeout)
	except Exception as e:
		err = e.args[0] if isinstance(e, KafkaException) and e.args else e
		text = err.str() if hasattr(err, "str") else str(err)
		return ExistingTopic(
			None, f"topic {topic} exists (made by the operator); its configuration could not be read ({text})"
		)
	actual = {k: (entries[k].value if k in entries else None) for k in wanted}
	wrong = {k: v for k, v in actual.items() if v != wanted[k]}
	shown = ", ".join(f"{k}={v}" for k, v in actual.items())
	if wrong:
		should = ", ".join(f"{k}={wanted[k]}" for k in wrong)
		return ExistingTopic(
			False,
			f"topic {topic} exists with {shown}; Spine needs {should}: set it with kafka-configs --alter",
		)
	return ExistingTopic(True, f"topic {topic} exists with {shown}, as Spine needs")


ZERO_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA"  # what a broker without topic ids answers (base64 of 16 zero bytes)


def topic_ids(admin_conf: dict[str, Any], topics: Iterable[str], timeout: float = 5) -> dict[str, str]:
	"""Each topic's id (Kafka gives a topic a new one when it is made again), for those of ``topics``
	that have one; ``{}`` when the broker does not answer or keeps no ids (never raises)."""
	from confluent_kafka import TopicCollection

	wanted = sorted(set(topics))
	if not wanted:
		return {}
	client = AdminClient(admin_conf)  # kept while the futures run: a client that goes away cancels them
	try:
		futures = client.describe_topics(TopicCollection(wanted), request_timeout=timeout)
	except (KafkaException, ValueError, TypeError):
		return {}
	found = {}
	for topic, future in futures.items():
		try:
			described = future.result(timeout + 1)
		except Exception:
			continue
		tid = str(getattr(described, "topic_id", "") or "")
		if tid and tid != ZERO_TOPIC_ID:
			found[topic] = tid
	return found


def group_topics(admin_conf: dict[str, Any], group: str, timeout: float = 5) -> set[str] | None:
	"""The topics of which some member of consumer ``group`` has a partition assigned, as the group's
	coordinator says (DescribeGroups); None when it does not answer (never raises)."""
	client = AdminClient(admin_conf)
	try:
		future = client.describe_consumer_groups([group], request_timeout=timeout)[group]
		described = future.result(timeout + 1)
	except Exception:
		return None
	return {
		tp.topic
		for member in described.members
		if member.assignment is not None
		for tp in member.assignment.topic_partitions
	}


def partition_health(client: Any, topic: str, partition: int | None = None, timeout: float = 2) -> str:
	"""What the cluster's metadata says is wrong with ``topic``'s partitions (``partition`` only, if
	given): ``"T[2] has no leader"``, ``"T[1] has 2 of 3 replicas in sync"``; ``""`` when nothing is
	(or the broker does not answer)."""
	try:
		meta = client.list_topics(topic, timeout=timeout).topics.get(topic)
	except KafkaException:
		return ""
	if meta is None or meta.error is not None:
		return f"{topic}: {meta.error.str()}" if meta is not None and meta.error is not None else ""
	found = []
	for p in sorted(meta.partitions.values(), key=lambda p: p.id):
		if partition is not None and partition >= 0 and p.id != partition:
			continue
		if p.leader < 0:
			found.append(f"{topic}[{p.id}] has no leader")
		elif len(p.isrs) < len(p.replicas):
			found.append(f"{topic}[{p.id}] has {len(p.isrs)} of {len(p.replicas)} replicas in sync")
	return "; ".join(found)


def cluster_problems(admin_conf: dict[str, Any], topics: Iterable[str], timeout: float = 5) -> list[str]:
	"""``partition_health`` of every one of ``topics`` that exists: the partitions without a leader or
	with replicas out of sync (empty when all is well or the broker does not answer)."""
	client = AdminClient(admin_conf)
	return [found for t in sorted(set(topics)) if (found := partition_health(client, t, timeout=timeout))]
