"""Turn site_config's ``"kafka"`` block into confluent-kafka producer, consumer and admin settings.

The block is the one users of the original Spine Adapter already have. It mixes librdkafka
properties with keys that are not librdkafka's (``consumer.min.commit.count``) and deprecated
ones (``default.topic.config``); this module sorts them so each client gets only what it
accepts. Plain Python: importing it never imports Frappe.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spine.errors import KafkaConfigError

log = logging.getLogger(__name__)

# Keys of the "kafka" block that are Spine's own settings, with their defaults.
SPINE_KEYS: dict[str, Any] = {
	# the original adapter's: accepted for its blocks; offsets are committed as Message Log stores messages
	"consumer.min.commit.count": 1,
	# Spine's: messages bigger than this are stored as Invalid instead of handled
	"spine.max.message.bytes": 1_048_576,
	# Spine's: after a poll that found nothing, the dispatcher stops fetching for this long. 0 for
	# Kafka, which holds an empty fetch for fetch.wait.max.ms; a broker that answers empty fetches
	# at once (the local development broker) would otherwise keep a consumer busy at half a core
	"spine.consumer.idle.pause.ms": 0,
	# Spine's: Prometheus metrics of spine-relay on this port, eventdispatcher on +1, jsonworker on
	# +2 (0: off unless a command's --metrics-port says otherwise)
	"spine.metrics.port": 0,
	# Spine's: partitions and replication factor of the topics Spine creates (its own, and those
	# Desk's Check connection creates); -1 takes the cluster's num.partitions / default.replication.factor
	"spine.topic.partitions": -1,
	"spine.topic.replication.factor": -1,
	# Spine's: CloudEvents binary-mode headers (ce_*) on every message it publishes
	"spine.cloudevents": True,
	# Spine's: a schema registry (Confluent's REST API: Confluent, Apicurio's /apis/ccompat/v7, Karapace)
	# for the producer rows whose wire format is "Registry JSON Schema", and to read registry-framed
	# messages of other producers; empty: none
	"spine.schema.registry.url": "",
}
# Passed to the registry client as they are (spine.schema.registry.<key>)
REGISTRY_KEYS = ("basic.auth.user.info", "ssl.ca.location", "ssl.certificate.location", "ssl.key.location")

# librdkafka properties that only a consumer accepts (CONFIGURATION.md, "C" rows).
CONSUMER_ONLY = frozenset(
	{
		"group.id",
		"group.instance.id",
		"group.protocol",
		"group.protocol.type",
		"group.remote.assignor",
		"partition.assignment.strategy",
		"session.timeout.ms",
		"heartbeat.interval.ms",
		"coordinator.query.interval.ms",
		"max.poll.interval.ms",
		"enable.auto.commit",
		"auto.commit.interval.ms",
		"auto.commit.enable",
		"enable.auto.offset.store",
		"auto.offset.reset",
		"queued.min.messages",
		"queued.max.messages.kbytes",
		"fetch.wait.max.ms",
		"fetch.queue.backoff.ms",
		"fetch.message.max.bytes",
		"max.partition.fetch.bytes",
		"fetch.max.bytes",
		"fetch.min.bytes",
		"fetch.error.backoff.ms",
		"offset.store.method",
		"offset.store.path",
		"offset.store.sync.interval.ms",
		"isolation.level",
		"enable.partition.eof",
		"check.crcs",
		"allow.auto.create.topics",
		"consume.callback.max.messages",
		"rebalance_cb",
		"offset_commit_cb",
		"on_commit",
	}
)

# librdkafka properties that only a producer accepts ("P" rows).
PRODUCER_ONLY = frozenset(
	{
		"acks",
		"request.required.acks",
		"request.timeout.ms",
		"message.timeout.ms",
		"delivery.timeout.ms",
		"enable.idempotence",
		"enable.gapless.guarantee",
		"transactional.id",
		"transaction.timeout.ms",
		"queue.buffering.max.messages",
		"queue.buffering.max.kbytes",
		"queue.buffering.max.ms",
		"linger.ms",
		"message.send.max.retries",
		"retries",
		"queue.buffering.backpressure.threshold",
		"compression.codec",
		"compression.type",
		"compression.level",
		"batch.num.messages",
		"batch.size",
		"delivery.report.only.error",
		"dr_cb",
		"dr_msg_cb",
		"sticky.partitioning.linger.ms",
		"partitioner",
		"partitioner_cb",
		"msg_order_cmp",
		"produce.offset.report",
	}
)

# Values of these keys are secrets: never logged, never shown in an error.
SECRET_KEYS = frozenset({"spine.schema.registry.basic.auth.user.info"}) | frozenset(
	{
		"sasl.password",
		"sasl.username",
		"sasl.oauthbearer.client.secret",
		"sasl.oauthbearer.config",
		"ssl.key.password",
		"ssl.key.pem",
		"ssl_key",
		"ssl.keystore.password",
		"ssl.certificate.pem",
		"ssl_certificate",
	}
)

REDACTED = "***"

# Producer settings Spine needs for "nothing lost, in order" (see README, guarantees).
_PRODUCER_REQUIRED = {"enable.idempotence": True, "acks": "all"}
# Producer defaults a user may override.
# Defaults chosen for latency (a saved document should reach its handler in tens of
# milliseconds); a user may override each. Batching still happens under load: librdkafka
# collects records while earlier requests are in flight.
_COMMON_DEFAULTS = {
	"socket.nagle.disable": True,  # no 40 ms wait for delayed ACKs on small requests
	# a broker back after an outage is reconnected to within a second (librdkafka backs off up to 10 s)
	"reconnect.backoff.max.ms": 1000,
}
_PRODUCER_DEFAULTS = {"linger.ms": 1, "message.timeout.ms": 30_000}
# Consumer settings the dispatcher relies on: offsets are stored only after Redis accepted a job.
_CONSUMER_REQUIRED = {"enable.auto.offset.store": False}
_CONSUMER_DEFAULTS = {
	"auto.offset.reset": "earliest",
	"enable.auto.commit": False,
	# Kafka holds an empty fetch this long and answers it the moment data arrives, so it costs no
	# latency; shorter, idle consumers keep the broker busy (measured, 20 idle sites on Kafka 4.4:
	# at 50 ms the broker used 21 % of a core, at 500 ms 5 %; save → handler 24 vs 20 ms)
	"fetch.wait.max.ms": 500,
	# a subscribed topic that does not exist yet is noticed within 5 s (librdkafka: 5 minutes)
	"topic.metadata.refresh.interval.ms": 5_000,
}


@dataclass(frozen=True)
class KafkaSettings:
	"""Per-role client settings; every dict can be passed to confluent-kafka as it is."""

	producer: dict[str, Any]
	consumer: dict[str, Any]
	admin: dict[str, Any]
	spine: dict[str, Any] = field(default_factory=dict)
	warnings: tuple[str, ...] = ()

	@property
	def bootstrap_servers(self) -> str:
		return self.admin["bootstrap.servers"]


def split_kafka_conf(
	raw: Mapping[str, Any] | None,
	*,
	default_group_id: str | None = None,
	logger: logging.Logger | None = None,
) -> KafkaSettings:
	"""Client settings for the site_config ``kafka`` block ``raw``.

	With ``logger``, every client is given it (confluent-kafka's ``logger`` setting), so
	librdkafka's own lines, ``"debug"`` output included, go to that logger instead of stderr.

	Guarantees: the result's producer is idempotent with ``acks=all`` (a conflicting value in
	``raw`` is replaced and reported in ``warnings``); the consumer never stores offsets on its
	own; Spine's own keys are in ``.spine`` and in no client dict; ``default.topic.config`` is
	flattened (top-level keys win). Raises ``KafkaConfigError`` naming the key to fix when the
	block cannot work; the error never contains a secret value.
	"""
	if raw is None:
		raise KafkaConfigError(
			'site_config.json has no "kafka" block; add one with at least '
			'{"bootstrap.servers": "host:9092"} (bench --site SITE set-config -p kafka \'{...}\'), '
			"or run `bench --site SITE spine-dev` on a development bench for a local broker"
		)
	if not isinstance(raw, Mapping):
		raise KafkaConfigError(f'site_config.json "kafka" must be a JSON object, not {type(raw).__name__}')

	flat: dict[str, Any] = {}
	nested = raw.get("default.topic.config")
	if nested is not None:
		if not isinstance(nested, Mapping):
			raise KafkaConfigError('"kafka"."default.topic.config" must be a JSON object of topic properties')
		flat.update(nested)
	for key, value in raw.items():
		if key != "default.topic.config":
			flat[key] = value

	spine = dict(SPINE_KEYS)
	common: dict[str, Any] = {}
	for key, value in flat.items():
		if not isinstance(key, str) or not key:
			raise KafkaConfigError(f'"kafka" has an empty or non-text key: {key!r}')
		if key in SPINE_KEYS or key.startswith("spine."):
			spine[key] = value
			continue
		if isinstance(value, Mapping | list | tuple) or value is None:
			shown = REDACTED if key in SECRET_KEYS else repr(value)[:60]
			raise KafkaConfigError(
				f'"kafka"."{key}" must be a string, number or boolean (got {shown}); '
				"librdkafka properties are flat"
			)
		common[key] = value

	servers = common.get("bootstrap.servers") or common.get("metadata.broker.list")
	if not servers or not str(servers).strip():
		raise KafkaConfigError(
			'"kafka" has no "bootstrap.servers"; add e.g. "bootstrap.servers": "localhost:9092"'
		)
	common.pop("metadata.broker.list", None)
	common["bootstrap.servers"] = str(servers).strip()
	for key, value in _COMMON_DEFAULTS.items():
		common.setdefault(key, value)
	_validate_spine_keys(spine)
	spine["spine.cloudevents"] = _flag(spine["spine.cloudevents"], "spine.cloudevents")
	unknown = [k for k in spine if k.startswith("spine.schema.registry.") and k != "spine.schema.registry.url"
		and k.removeprefix("spine.schema.registry.") not in REGISTRY_KEYS]  # fmt: skip
	if unknown:
		raise KafkaConfigError(
			f'"kafka"."{unknown[0]}" is not a schema registry setting; use spine.schema.registry.url and '
			+ ", ".join(f"spine.schema.registry.{k}" for k in REGISTRY_KEYS)
		)

	warnings: list[str] = []
	producer = {k: v for k, v in common.items() if k not in CONSUMER_ONLY}
	for key in ("acks", "request.required.acks"):
		given = producer.pop(key, None)
		if given is not None and str(given).lower() not in {"all", "-1"}:
			warnings.append(
				f'"kafka"."{key}"={given!r} is ignored: Spine\'s producer always uses acks=all, '
				"so an event counts as published only once every in-sync replica has it"
			)
	idempotence = producer.get("enable.idempotence")
	if idempotence is not None and str(idempotence).lower() not in {"true", "1"}:
		warnings.append(
			f'"kafka"."enable.idempotence"={idempotence!r} is ignored: Spine\'s producer is always '
			"idempotent, so broker retries neither duplicate nor reorder events"
		)
	producer.update(_PRODUCER_REQUIRED)
	for key, value in _PRODUCER_DEFAULTS.items():
		producer.setdefault(key, value)

	consumer = {k: v for k, v in common.items() if k not in PRODUCER_ONLY}
	if not consumer.get("group.id"):
		if not default_group_id:
			raise KafkaConfigError('"kafka" has no "group.id"; add e.g. "group.id": "spine-<your site>"')
		consumer["group.id"] = default_group_id
	for key, value in _CONSUMER_REQUIRED.items():
		consumer[key] = value
	for key, value in _CONSUMER_DEFAULTS.items():
		consumer.setdefault(key, value)

	admin = {k: v for k, v in common.items() if k not in CONSUMER_ONLY and k not in PRODUCER_ONLY}
	if logger is not None:
		for client in (producer, consumer, admin):
			client["logger"] = logger
	return KafkaSettings(
		producer=producer, consumer=consumer, admin=admin, spine=spine, warnings=tuple(warnings)
	)


def redact(conf: Mapping[str, Any]) -> dict[str, Any]:
	"""A copy of ``conf`` safe to log or show: secret values replaced by ``***``, nested dicts too."""
	out: dict[str, Any] = {}
	for key, value in conf.items():
		if isinstance(value, Mapping):
			out[key] = redact(value)
		elif key in SECRET_KEYS or "password" in str(key) or "secret" in str(key):
			out[key] = REDACTED
		else:
			out[key] = value
	return out


def _flag(value: Any, key: str) -> bool:
	if isinstance(value, bool):
		return value
	if str(value).strip().lower() in ("1", "true", "yes", "on"):
		return True
	if str(value).strip().lower() in ("0", "false", "no", "off"):
		return False
	raise KafkaConfigError(f'"kafka"."{key}" must be true or false (got {value!r:.40})')


def registry_settings(spine: Mapping[str, Any]) -> dict[str, str] | None:
	"""The schema registry client's settings from a block's Spine keys (``url`` and the auth and TLS
	keys as given), or None when the block names no registry."""
	url = str(spine.get("spine.schema.registry.url") or "").strip()
	if not url:
		return None
	found = {"url": url.rstrip("/")}
	for key in REGISTRY_KEYS:
		if spine.get(f"spine.schema.registry.{key}"):
			found[key] = str(spine[f"spine.schema.registry.{key}"])
	return found


def _validate_spine_keys(spine: dict[str, Any]) -> None:
	for key, least in (("consumer.min.commit.count", 1), ("spine.max.message.bytes", 1),
			("spine.consumer.idle.pause.ms", 0), ("spine.metrics.port", 0),
			("spine.topic.partitions", -1), ("spine.topic.replication.factor", -1)):  # fmt: skip
		value = spine[key]
		try:
			number = int(value)
		except (TypeError, ValueError):
			raise KafkaConfigError(f'"kafka"."{key}" must be a whole number (got {value!r:.40})') from None
		if number < least:
			raise KafkaConfigError(f'"kafka"."{key}" must be at least {least} (got {number})')
		if number == 0 and key.startswith("spine.topic."):
			raise KafkaConfigError(
				f'"kafka"."{key}" must be -1 (the cluster\'s default) or at least 1 (got 0)'
			)
		if key == "spine.metrics.port" and number > 65533:
			raise KafkaConfigError(
				f'"kafka"."{key}" must be a port up to 65533 (its +2 is the jsonworker\'s; got {number})'
			)
		spine[key] = number
