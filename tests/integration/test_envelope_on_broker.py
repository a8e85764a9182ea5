"""The wire format survives a real broker: value, key and headers come back intact."""

import datetime
import decimal
import time

from confluent_kafka import Consumer, Producer

from spine import envelope
from spine.config.kafka import split_kafka_conf


def consume_all(settings, topic, count, timeout=30):
	consumer = Consumer(settings.consumer)
	consumer.subscribe([topic])
	got, deadline = [], time.monotonic() + timeout
	try:
		while len(got) < count and time.monotonic() < deadline:
			for msg in consumer.consume(50, 0.5):
				assert msg.error() is None, msg.error()
				got.append(msg)
	finally:
		consumer.close()
	return got


def test_envelope_produced_consumed_and_parsed(kafka_bootstrap, topic):
	raw = {
		"bootstrap.servers": kafka_bootstrap,
		"client.id": "test.local",
		"group.id": f"g-{topic}",
		"default.topic.config": {"acks": "all"},
		"consumer.min.commit.count": 1,
		"auto.offset.reset": "smallest",
		"request.required.acks": "1",
		"fetch.message.max.bytes": "81920",
	}
	settings = split_kafka_conf(raw)
	producer = Producer(settings.producer)
	sent, reports = [], []
	for i in range(6):
		env = envelope.build(
			doctype="Sales Invoice",
			docname=f"SINV-{i % 2}",
			event="on_update",
			topic=topic,
			payload={
				"name": f"SINV-{i % 2}",
				"seq": i,
				"total": decimal.Decimal("1.25"),
				"when": datetime.datetime(2026, 1, 1, 10, 0, i),
				"items": [{"idx": 1, "qty": i}],
			},
			origin="test.local",
			origin_site="a.local",
		)
		producer.produce(
			topic,
			envelope.encode(env),
			key=env.key,
			headers=env.headers(),
			on_delivery=lambda err, msg: reports.append(err),
		)
		sent.append(env)
	assert producer.flush(15) == 0
	assert reports == [None] * 6

	got = consume_all(settings, topic, 6)
	assert len(got) == 6
	by_id = {}
	for msg in got:
		parsed = envelope.parse(msg.value())
		headers = {k: v.decode() for k, v in msg.headers()}
		assert headers[envelope.HEADER_MESSAGE_ID] == parsed.message_id
		assert headers[envelope.HEADER_DOCNAME] == parsed.docname
		assert headers[envelope.HEADER_DOCTYPE] == "Sales Invoice"
		assert msg.key().decode() == parsed.key
		by_id[parsed.message_id] = (msg, parsed)
	assert set(by_id) == {e.message_id for e in sent}
	for env in sent:
		msg, parsed = by_id[env.message_id]
		assert parsed.payload == env.payload and parsed.body == env.body
	# one document's events share a key, so they share a partition and keep their order
	for name in ("SINV-0", "SINV-1"):
		msgs = [m for m, p in by_id.values() if p.docname == name]
		assert len({m.partition() for m in msgs}) == 1
		seqs = [envelope.parse(m.value()).payload["seq"] for m in sorted(msgs, key=lambda m: m.offset())]
		assert seqs == sorted(seqs)
