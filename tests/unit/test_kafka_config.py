import json

import pytest

from spine.config.kafka import REDACTED, redact, split_kafka_conf
from spine.errors import KafkaConfigError

# The exact block from the original Spine Adapter's README (DESIGN.md).
README_BLOCK = {
	"bootstrap.servers": "localhost:9092",
	"client.id": "withrun.local",
	"default.topic.config": {"acks": "all"},
	"consumer.min.commit.count": 1,
	"group.id": "spine-client-withrun",
	"debug": "topic",
	"auto.offset.reset": "smallest",
	"request.required.acks": "1",
	"fetch.message.max.bytes": "81920",
}


def test_readme_block_splits_into_roles():
	s = split_kafka_conf(README_BLOCK)
	assert s.spine["consumer.min.commit.count"] == 1
	for conf in (s.producer, s.consumer, s.admin):
		assert "consumer.min.commit.count" not in conf and "default.topic.config" not in conf
		assert conf["bootstrap.servers"] == "localhost:9092" and conf["client.id"] == "withrun.local"
	assert s.producer["acks"] == "all" and s.producer["enable.idempotence"] is True
	assert "request.required.acks" not in s.producer and "group.id" not in s.producer
	assert "fetch.message.max.bytes" not in s.producer
	assert s.consumer["group.id"] == "spine-client-withrun"
	assert s.consumer["auto.offset.reset"] == "smallest"
	assert s.consumer["fetch.message.max.bytes"] == "81920"
	assert s.consumer["enable.auto.offset.store"] is False
	assert "acks" not in s.consumer
	assert any("request.required.acks" in w for w in s.warnings)


def test_readme_block_is_accepted_by_librdkafka():
	from confluent_kafka import Consumer, Producer
	from confluent_kafka.admin import AdminClient

	s = split_kafka_conf({**README_BLOCK, "debug": "generic"})
	Producer({**s.producer, "debug": "generic"})  # raises KafkaException on a bad property
	c = Consumer(s.consumer)
	c.close()
	AdminClient(s.admin)


def test_top_level_keys_win_over_default_topic_config():
	s = split_kafka_conf(
		{
			"bootstrap.servers": "b:1",
			"group.id": "g",
			"default.topic.config": {"auto.offset.reset": "latest", "message.timeout.ms": 1000},
			"auto.offset.reset": "earliest",
		}
	)
	assert s.consumer["auto.offset.reset"] == "earliest"
	assert s.producer["message.timeout.ms"] == 1000


def test_weaker_producer_settings_are_replaced_and_reported():
	s = split_kafka_conf(
		{"bootstrap.servers": "b:1", "group.id": "g", "acks": 1, "enable.idempotence": False}
	)
	assert s.producer["acks"] == "all" and s.producer["enable.idempotence"] is True
	assert len(s.warnings) == 2


def test_group_id_defaults_when_given_one():
	s = split_kafka_conf({"bootstrap.servers": "b:1"}, default_group_id="spine-site1")
	assert s.consumer["group.id"] == "spine-site1"
	with pytest.raises(KafkaConfigError, match="group.id"):
		split_kafka_conf({"bootstrap.servers": "b:1"})


@pytest.mark.parametrize(
	"raw, message",
	[
		(None, 'no "kafka" block'),
		("localhost:9092", "must be a JSON object"),
		({}, "bootstrap.servers"),
		({"bootstrap.servers": "  "}, "bootstrap.servers"),
		({"bootstrap.servers": "b:1", "default.topic.config": "acks=all"}, "default.topic.config"),
		({"bootstrap.servers": "b:1", "socket.timeout.ms": {"x": 1}}, '"socket.timeout.ms" must be a string'),
		({"bootstrap.servers": "b:1", "consumer.min.commit.count": "many"}, "whole number"),
		({"bootstrap.servers": "b:1", "consumer.min.commit.count": 0}, "at least 1"),
		(
			{"bootstrap.servers": "b:1", "spine.consumer.idle.pause.ms": -5},
			'idle.pause.ms" must be at least 0',
		),
	],
)
def test_bad_blocks_say_what_to_fix(raw, message):
	with pytest.raises(KafkaConfigError, match=message):
		split_kafka_conf(raw, default_group_id="g")


def test_secrets_never_appear_in_errors_or_redacted_output():
	secret = "hunter2-very-secret"
	with pytest.raises(KafkaConfigError) as e:
		split_kafka_conf({"bootstrap.servers": "b:1", "sasl.password": {"v": secret}})
	assert secret not in str(e.value)
	conf = {
		"bootstrap.servers": "b:1",
		"sasl.username": "u",
		"sasl.password": secret,
		"ssl.key.password": secret,
		"default.topic.config": {"x.secret": secret},
	}
	shown = json.dumps(redact(conf))
	assert secret not in shown and REDACTED in shown
	s = split_kafka_conf(conf, default_group_id="g")
	assert secret not in json.dumps(redact(s.producer)) and s.producer["sasl.password"] == secret
