"""This site's Kafka client settings: site_config's ``kafka`` block through ``spine.config.kafka``."""

from __future__ import annotations

import frappe

from spine import compat, logs, metrics
from spine.config.kafka import KafkaSettings, split_kafka_conf
from spine.errors import KafkaConfigError

log = logs.logger(__name__)
_warned: set[str] = set()
_made_topics: set[str] = set()


def site_settings() -> KafkaSettings:
	"""Producer, consumer and admin settings of the current site.

	The consumer group defaults to ``spine-<site>``; every client logs through
	``spine.librdkafka`` into the bench's ``logs/spine.log``. Raises ``KafkaConfigError``
	(naming the key to fix) when the block cannot work. Each warning (an ignored ``acks``,
	say) is logged once per process.
	"""
	settings = split_kafka_conf(
		frappe.conf.get("kafka"), default_group_id=f"spine-{frappe.local.site}", logger=logs.kafka_logger()
	)
	for warning in settings.warnings:
		if warning not in _warned:
			_warned.add(warning)
			log.warning("Spine on %s: %s", frappe.local.site, warning)
	return settings


_registries: dict[tuple, object] = {}


def registry(settings: KafkaSettings | None = None):
	"""The site's schema registry client (``spine.registry.client.RegistryClient``), one per process and
	settings (it keeps the ids it registered and the schemas it read), or None when the kafka block
	names no ``spine.schema.registry.url``."""
	from spine.config.kafka import registry_settings
	from spine.registry.client import RegistryClient

	found = registry_settings((settings or site_settings()).spine)
	if found is None:
		return None
	key = tuple(sorted(found.items()))
	if key not in _registries:
		_registries[key] = RegistryClient(found)
	return _registries[key]


def check_reachable(settings: KafkaSettings | None = None, timeout: float = 10) -> KafkaSettings:
	"""The site's settings, after making sure the broker answers; raises ``BrokerUnavailable`` if not."""
	from spine.errors import BrokerUnavailable
	from spine.kafka.admin import check

	settings = settings or site_settings()
	report = check(settings.admin, [], timeout=timeout)
	if not report["ok"]:
		error = report["error"]
		if hint := refusal_hint(error):
			raise BrokerUnavailable(f"Kafka at {settings.bootstrap_servers}: {error}; {hint}")
		raise BrokerUnavailable(
			f"the Kafka broker at {settings.bootstrap_servers} does not answer ({error}). "
			f"Start it, or for development run `bench --site {frappe.local.site} spine-dev` "
			"(or `bench spine-broker`) for a local one."
		)
	return settings


def refusal_hint(error: str) -> str | None:
	"""What to check when the broker refused this site (``spine.kafka.admin.ConnectionErrors``'s
	text): the login or the TLS settings of the kafka block; None for other errors."""
	if "refused the login" in error:
		return 'check "sasl.username", "sasl.password" and "sasl.mechanisms" in the kafka block'
	if "TLS handshake" in error:
		return (
			'check "ssl.ca.location" (the CA that signed the broker\'s certificate) in the kafka block, '
			"and that the broker's certificate has not expired"
		)
	return None


def ensure_topic(topic: str, why: str) -> None:
	"""Create Spine's own ``topic`` before Spine first uses it, once per process and broker: with its
	configuration (``spine.config.topics.own_topic_config``: compacted, or a short retention) and the
	partitions and replication the kafka block's ``spine.topic.*`` keys give (the cluster's defaults
	unless set). A topic the broker auto-creates on first use would be plain, and a consumer that
	subscribed before it existed would find it only at its next metadata refresh. Never raises: a
	broker that refuses logs a warning saying ``why`` the topic matters."""
	from spine.config.topics import own_topic_config
	from spine.kafka import broker_errors
	from spine.kafka.admin import create_topics, existing_topic

	settings = site_settings()
	marker = f"{settings.bootstrap_servers}|{topic}"
	if marker in _made_topics:
		return
	wanted = own_topic_config(topic)
	errors = create_topics(settings.admin, [topic], config=wanted, **topic_layout(settings))
	if errors.get(topic):
		# a principal without the Create ACL is refused even where the topic exists: say what is true
		found = existing_topic(settings.admin, topic, wanted) if wanted else None
		if found is not None and found.matches:
			log.info("Spine on %s: %s (not created: %s)", frappe.local.site, found.text, errors[topic])
		elif found is not None:
			log.warning("Spine on %s: %s", frappe.local.site, found.text)
		else:
			refused = broker_errors.kind_of(errors[topic]) == broker_errors.AUTHORIZATION
			log.warning(
				"Spine on %s: could not create topic %s on %s (%s%s); %s",
				frappe.local.site, topic, settings.bootstrap_servers, errors[topic],
				": this site's principal may not create topics; create it as the README's Least ACLs says"
				if refused else "", why,
			)  # fmt: skip
	_made_topics.add(marker)


def topic_layout(settings: KafkaSettings | None = None) -> dict[str, int]:
	"""``{"partitions", "replication"}`` for a topic Spine creates: the kafka block's
	``spine.topic.partitions`` and ``spine.topic.replication.factor`` (-1: the cluster's default)."""
	spine = (settings or site_settings()).spine
	return {
		"partitions": spine["spine.topic.partitions"],
		"replication": spine["spine.topic.replication.factor"],
	}


def describe() -> str:
	"""Where this site's Kafka is, for Desk: the bootstrap servers (never a secret), or why none."""
	from spine.errors import KafkaConfigError

	try:
		return site_settings().bootstrap_servers
	except KafkaConfigError as e:
		return f"none usable ({e})"


# The kafka block's spine.metrics.port is spine-relay's; the consumer commands take the next ports.
METRICS_PORT_OFFSETS = {"spine-relay": 0, "eventdispatcher": 1, "jsonworker": 2}


def serve_metrics(port: int | None, process: str) -> int | None:
	"""Start ``process``'s Prometheus metrics server for the current site: on ``port``, else on the
	kafka block's ``spine.metrics.port`` plus the command's offset; none without either. Returns
	the port. Call before forking the command's children."""
	if not port:
		try:
			base = site_settings().spine.get("spine.metrics.port") or 0
		except KafkaConfigError:
			base = 0  # the dispatcher and the relay refuse to start with the reason; a worker goes on
		port = int(base) + METRICS_PORT_OFFSETS[process] if base else None
	if port:
		metrics.serve(port)
		log.info("%s@%s: Prometheus metrics on port %s (/metrics)", process, frappe.local.site, port)
	return port


def doorbell():
	"""The bench's doorbell (``spine.kafka.doorbell``) on the queue Redis, shared by every site of
	the bench: the relay rings it, resting dispatchers wait on it."""
	return _bench_bell("spine:news")


def config_bell():
	"""The bench's bell for saved consumer configs (``spine.kafka.doorbell`` on its own channel): rung
	with the site's name after a Spine Consumer Config commit, so the site's dispatchers read their
	topics at once instead of at the next refresh."""
	return _bench_bell("spine:config")


def _bench_bell(name: str):
	"""The process's ``spine.kafka.doorbell`` on the bench's queue Redis, channel ``name``."""
	from frappe.utils.background_jobs import generate_qname, get_redis_conn

	from spine.kafka.doorbell import doorbell as bench_doorbell

	return bench_doorbell(get_redis_conn(), generate_qname(name))


def ring_config_bell_after_commit() -> None:
	"""Ring ``config_bell`` for this site once the saving transaction commits (never on rollback)."""
	site = frappe.local.site
	compat.after_commit(lambda: config_bell().ring([site]))
