"""KafkaPublisher against the real broker: confirmed deliveries, order per key, failures reported."""

import time

from confluent_kafka import Consumer

from spine.config.kafka import split_kafka_conf
from spine.kafka.publisher import KafkaPublisher, OutRecord, shared_publisher


def records(topic, n, keys=3):
	return [
		OutRecord(
			ref=i,
			topic=topic,
			key=f"Item:{i % keys}",
			value=f'{{"seq": {i}}}'.encode(),
			headers=[("h", b"v")],
		)
		for i in range(n)
	]


def read_topic(bootstrap, topic, count, timeout=30):
	c = Consumer(
		{"bootstrap.servers": bootstrap, "group.id": f"read-{topic}", "auto.offset.reset": "earliest"}
	)
	c.subscribe([topic])
	got, deadline = [], time.monotonic() + timeout
	try:
		while len(got) < count and time.monotonic() < deadline:
			got += [m for m in c.consume(100, 0.5) if m.error() is None]
	finally:
		c.close()
	return got


def test_every_record_is_confirmed_with_partition_and_offset(kafka_bootstrap, topic):
	pub = KafkaPublisher(
		split_kafka_conf({"bootstrap.servers": kafka_bootstrap}, default_group_id="g").producer
	)
	recs = records(topic, 300)
	deliveries = pub.publish(recs)
	assert [d.ref for d in deliveries] == list(range(300))
	assert all(d.ok and d.partition is not None and d.offset is not None for d in deliveries)
	msgs = read_topic(kafka_bootstrap, topic, 300)
	assert len(msgs) == 300
	by_pos = {(m.partition(), m.offset()): m for m in msgs}
	for d in deliveries:
		assert by_pos[(d.partition, d.offset)].value() == recs[d.ref].value
	for key in ("Item:0", "Item:1", "Item:2"):
		mine = sorted((m for m in msgs if m.key() == key.encode()), key=lambda m: m.offset())
		seqs = [int(m.value()[8:-1]) for m in mine]
		assert seqs == sorted(seqs) and len({m.partition() for m in mine}) == 1


def test_unreachable_broker_reports_every_record_as_failed():
	conf = split_kafka_conf(
		{"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 1500}, default_group_id="g"
	).producer
	pub = KafkaPublisher(conf)
	t0 = time.monotonic()
	deliveries = pub.publish(records("nowhere", 5))
	assert time.monotonic() - t0 < 15
	assert [d.ok for d in deliveries] == [False] * 5
	assert all(d.retriable and d.error for d in deliveries)


def test_oversized_record_is_a_permanent_failure(kafka_bootstrap, topic):
	conf = split_kafka_conf(
		{"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 10_000}, default_group_id="g"
	)
	pub = KafkaPublisher(conf.producer)
	big = OutRecord(ref="big", topic=topic, key="k", value=b"x" * 20_000, headers=[])
	small = OutRecord(ref="small", topic=topic, key="k2", value=b"y", headers=[])
	d_big, d_small = pub.publish([big, small])
	assert not d_big.ok and not d_big.retriable and "SIZE" in d_big.error
	assert d_small.ok


def test_shared_publisher_is_one_per_process_and_settings(kafka_bootstrap):
	conf = {"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True}
	assert shared_publisher(conf) is shared_publisher(dict(conf))
	assert shared_publisher(conf) is not shared_publisher({**conf, "linger.ms": 1})
