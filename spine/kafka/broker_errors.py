"""What an error from the broker (or librdkafka) means for Spine: one table, read by the relay's
publisher, the dispatcher, topic creation, the connection check and ``spine-status``. Plain Python.

Kinds:

- ``retriable``: try again later (the broker away, a leader moving, a timeout); the rows wait;
- ``cluster``: retriable, and what the cluster's metadata says of the partition is what an operator
  needs to know (no leader, too few replicas in sync);
- ``authorization``: the broker refuses this principal (a missing ACL); the rows are held, not
  Failed, and go out once the operator adds the ACL;
- ``refused``: the record itself is wrong (too large, invalid); sending it again cannot help;
- ``login`` / ``tls``: the kafka block's credentials or TLS settings are refused;
- ``registry``: the schema registry refused an event's schema (or the block names none); held like
  ``authorization``, released once the operator resolves it;
- ``fatal``: the client stopped for good (librdkafka's fatal flag: a fenced static member, a fatal
  idempotence error); it must be made anew.

Errors are stored in Message Log as ``NAME: text`` (``describe``), so a stored error is classified by
its name (``kind_of``), never by words of its text.
"""

from __future__ import annotations

from confluent_kafka import KafkaError

RETRIABLE, CLUSTER, AUTHORIZATION, REFUSED, LOGIN, TLS, FATAL, REGISTRY = (
	"retriable", "cluster", "authorization", "refused", "login", "tls", "fatal", "registry",
)  # fmt: skip
# Errors of Spine's own, stored like the broker's (``NAME: text``): the schema registry refused an event's
# schema, names none, or did not answer. The rows are held (retried), as with a missing ACL.
REGISTRY_REFUSED, REGISTRY_MISSING, REGISTRY_UNAVAILABLE = (
	"REGISTRY_REFUSED",
	"REGISTRY_MISSING",
	"REGISTRY_UNAVAILABLE",
)

_TABLE: dict[int, str] = {
	KafkaError.MSG_SIZE_TOO_LARGE: REFUSED,
	KafkaError.INVALID_MSG_SIZE: REFUSED,
	KafkaError.RECORD_LIST_TOO_LARGE: REFUSED,
	KafkaError.INVALID_RECORD: REFUSED,
	KafkaError._INVALID_ARG: REFUSED,
	KafkaError.TOPIC_EXCEPTION: REFUSED,
	KafkaError.TOPIC_AUTHORIZATION_FAILED: AUTHORIZATION,
	KafkaError.GROUP_AUTHORIZATION_FAILED: AUTHORIZATION,
	KafkaError.CLUSTER_AUTHORIZATION_FAILED: AUTHORIZATION,
	KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: AUTHORIZATION,
	KafkaError._AUTHENTICATION: LOGIN,
	KafkaError.SASL_AUTHENTICATION_FAILED: LOGIN,
	KafkaError._SSL: TLS,
	KafkaError._MSG_TIMED_OUT: CLUSTER,
	KafkaError.NOT_ENOUGH_REPLICAS: CLUSTER,
	KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND: CLUSTER,
	KafkaError.LEADER_NOT_AVAILABLE: CLUSTER,
	KafkaError.NOT_LEADER_FOR_PARTITION: CLUSTER,
	KafkaError.REQUEST_TIMED_OUT: CLUSTER,
	KafkaError._TIMED_OUT: CLUSTER,
}
_BY_NAME = {KafkaError(code).name(): kind for code, kind in _TABLE.items()} | {
	REGISTRY_REFUSED: REGISTRY,
	REGISTRY_MISSING: REGISTRY,
	REGISTRY_UNAVAILABLE: RETRIABLE,
}


def classify(err: KafkaError) -> str:
	"""The kind of ``err`` (see the module's list)."""
	if err.fatal():
		return FATAL
	return _TABLE.get(err.code(), RETRIABLE)


def describe(err: KafkaError) -> str:
	"""``NAME: text``, as Spine stores and logs a broker error."""
	return f"{err.name()}: {err.str()}"


def kind_of(stored: str | None) -> str | None:
	"""The kind of an error stored by ``describe`` (by its name); None when it is not one."""
	if not stored:
		return None
	return _BY_NAME.get(stored.split(":", 1)[0].strip(), RETRIABLE if ":" in stored else None)


def retriable(err: KafkaError) -> bool:
	"""Whether sending the record again can help (everything but ``refused`` and ``fatal``)."""
	return classify(err) not in (REFUSED,)
