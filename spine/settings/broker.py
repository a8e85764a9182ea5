"""This site's Kafka client settings: site_config's ``kafka`` block through ``spine.config.kafka``."""

from __future__ import annotations

import frappe

from spine import logs
from spine.config.kafka import KafkaSettings, split_kafka_conf

log = logs.logger(__name__)
_warned: set[str] = set()


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
