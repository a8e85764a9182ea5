"""Spine's own topics' settings, the spine.topic.* keys, and what a partition's metadata says is wrong."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from spine.config.kafka import split_kafka_conf
from spine.config.topics import INITIAL_SYNC_TOPIC, KEYS_TOPIC, SCHEMAS_TOPIC, own_topic_config, reply_topic
from spine.errors import KafkaConfigError
from spine.kafka.admin import partition_health
from spine.kafka.lag import PartitionLag


def test_own_topics_are_compacted_or_short_lived():
	assert own_topic_config(KEYS_TOPIC) == own_topic_config(SCHEMAS_TOPIC) == {"cleanup.policy": "compact"}
	assert own_topic_config(reply_topic("a.example.com")) == {"retention.ms": "3600000"}
	assert own_topic_config(INITIAL_SYNC_TOPIC) == {"retention.ms": "3600000"}
	assert own_topic_config("orders") == {}, "a user's topic gets the cluster's defaults"


def test_topic_layout_defaults_to_the_clusters_and_refuses_zero():
	spine = split_kafka_conf({"bootstrap.servers": "b:1", "group.id": "g"}).spine
	assert (spine["spine.topic.partitions"], spine["spine.topic.replication.factor"]) == (-1, -1)
	spine = split_kafka_conf(
		{"bootstrap.servers": "b:1", "group.id": "g", "spine.topic.replication.factor": "3"}
	).spine
	assert spine["spine.topic.replication.factor"] == 3
	with pytest.raises(KafkaConfigError, match="must be -1"):
		split_kafka_conf({"bootstrap.servers": "b:1", "group.id": "g", "spine.topic.partitions": 0})


class _Metadata:
	"""``list_topics`` of a client, from ``{partition: (leader, replicas, in sync)}``."""

	def __init__(self, topic: str, parts: dict[int, tuple[int, list[int], list[int]]]):
		partitions = {
			p: SimpleNamespace(id=p, leader=lead, replicas=r, isrs=i) for p, (lead, r, i) in parts.items()
		}
		self.meta = SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions=partitions)})

	def list_topics(self, topic=None, timeout=None):
		return self.meta


def test_partition_health_names_partitions_without_a_leader_or_out_of_sync():
	client = _Metadata("t", {0: (1, [1, 2, 3], [1, 2, 3]), 1: (-1, [1, 2, 3], []), 2: (2, [1, 2, 3], [2, 3])})
	assert partition_health(client, "t") == "t[1] has no leader; t[2] has 2 of 3 replicas in sync"
	assert partition_health(client, "t", partition=0) == ""
	assert partition_health(client, "other") == ""


def test_lag_rows_say_what_the_cluster_says():
	assert PartitionLag("t", 0, 5, 9, 4, leader=1, replicas=3, in_sync=3).health is None
	assert PartitionLag("t", 0, 5, 9, 4, leader=-1, replicas=3, in_sync=0).health == "no leader"
	assert PartitionLag("t", 0, 5, 9, 4, leader=2, replicas=3, in_sync=2).health == "2 of 3 replicas in sync"
