"""Spine's own topics, read back from the broker: compacted where readers need the latest value per
key, short-lived where messages expire with a deadline, laid out as the kafka block and the cluster
say."""

from __future__ import annotations

from tests.bench.helpers import BenchProcess, site_kafka, unique, wait_for


def _describe(bootstrap: str, topics: list[str]) -> tuple[dict, dict, str]:
	"""``({topic: (partitions, replicas of partition 0)}, {topic: {config: value}}, the broker's
	default.replication.factor)``."""
	from confluent_kafka.admin import AdminClient, ConfigResource

	admin = AdminClient({"bootstrap.servers": bootstrap})
	meta = admin.list_topics(timeout=10)
	layout = {t: (len(meta.topics[t].partitions), len(meta.topics[t].partitions[0].replicas)) for t in topics}
	resources = [ConfigResource("topic", t) for t in topics]
	configs = {
		r.name: {k: v.value for k, v in f.result(10).items()}
		for r, f in admin.describe_configs(resources).items()
	}
	broker_id = str(next(iter(meta.brokers)))
	(broker_conf,) = [
		f.result(10) for f in admin.describe_configs([ConfigResource("broker", broker_id)]).values()
	]
	return layout, configs, broker_conf["default.replication.factor"].value


def test_spines_own_topics_are_compacted_or_short_lived_with_the_blocks_layout(routes, frappe_site):
	import frappe

	from spine.config.topics import INITIAL_SYNC_TOPIC, KEYS_TOPIC, SCHEMAS_TOPIC, reply_topic
	from spine.producer import relay, signing_key
	from tests.brokers import OwnBroker

	broker = OwnBroker()  # new topics, made by this code (a shared broker may hold older ones)
	try:
		with site_kafka(broker.bootstrap_servers, **{"spine.topic.partitions": 2}):
			routes({"document_type": "ToDo", "topic": unique("own"), "on_update": 1})
			frappe.get_doc({"doctype": "ToDo", "description": "own topics"}).insert()  # its schema goes first
			signing_key.publish_key()
			frappe.db.commit()
			relay.drain()
			# the dispatcher makes the site's reply topic and spine.sync.initial before it subscribes
			dispatcher = BenchProcess("eventdispatcher", "--queue", unique("own"))
			try:
				wait_for(lambda: "following topics" in dispatcher.output(), 60,
					what=lambda: f"the dispatcher to subscribe\n{dispatcher.output()[-2000:]}")  # fmt: skip
			finally:
				dispatcher.stop()
			replies = reply_topic(frappe.local.site)
			own = [KEYS_TOPIC, SCHEMAS_TOPIC, replies, INITIAL_SYNC_TOPIC]
			layout, configs, replication = _describe(broker.bootstrap_servers, own)
	finally:
		broker.close()

	assert configs[KEYS_TOPIC]["cleanup.policy"] == "compact"
	assert configs[SCHEMAS_TOPIC]["cleanup.policy"] == "compact"
	for short in (replies, INITIAL_SYNC_TOPIC):
		assert configs[short]["cleanup.policy"] == "delete", short
		assert configs[short]["retention.ms"] == "3600000", short
	# partitions as the block says; replicas as the cluster's default (no topic left with one on a cluster)
	assert layout == {t: (2, int(replication)) for t in own}, (layout, replication)
