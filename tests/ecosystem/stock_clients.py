"""Kafka clients nobody here wrote, as other teams use them: confluent-kafka's Schema Registry serdes
and the CloudEvents SDK's Kafka binding. Run in an environment of their own (``clients.py`` makes it);
imports nothing of Spine. Each command prints one JSON line.

python stock_clients.py read-registry-json BOOTSTRAP REGISTRY TOPIC COUNT
python stock_clients.py read-cloudevents BOOTSTRAP TOPIC COUNT
python stock_clients.py produce-registry BOOTSTRAP REGISTRY TOPIC json|avro SCHEMA_JSON ITEMS_JSON
python stock_clients.py produce-structured BOOTSTRAP TOPIC EVENT_JSON
"""

from __future__ import annotations

import json
import sys
import time
import uuid


def _consumer(bootstrap: str, topic: str):
	from confluent_kafka import Consumer

	c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"stock-{uuid.uuid4().hex[:8]}",
		"auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
	c.subscribe([topic])
	return c


def _read(consumer, count: int, decode, timeout: float = 60) -> list:
	out, deadline = [], time.monotonic() + timeout
	while len(out) < count and time.monotonic() < deadline:
		msg = consumer.poll(1.0)
		if msg is None or msg.error():
			continue
		out.append(decode(msg))
	consumer.close()
	return out


def read_registry_json(bootstrap: str, registry: str, topic: str, count: str) -> list:
	"""The values of ``topic`` as confluent-kafka's JSONDeserializer gives them (the writer's schema from
	the registry, each payload validated against it)."""
	from confluent_kafka.schema_registry import SchemaRegistryClient
	from confluent_kafka.schema_registry.json_schema import JSONDeserializer
	from confluent_kafka.serialization import MessageField, SerializationContext

	deserializer = JSONDeserializer(None, schema_registry_client=SchemaRegistryClient({"url": registry}))
	return _read(_consumer(bootstrap, topic), int(count),
		lambda m: deserializer(m.value(), SerializationContext(m.topic(), MessageField.VALUE)))  # fmt: skip


def read_cloudevents(bootstrap: str, topic: str, count: str) -> list:
	"""The messages of ``topic`` as the CloudEvents SDK's Kafka binding reads them (binary mode)."""
	from cloudevents.v1.kafka import KafkaMessage, from_binary

	def decode(m):
		event = from_binary(KafkaMessage(headers=dict(m.headers() or []), key=m.key(), value=m.value()),
			data_unmarshaller=lambda b: json.loads(b))  # fmt: skip
		return {
			# the binding gives the record key as partitionkey, as the client read it (bytes)
			"attributes": {
				k: v.decode() if isinstance(v, bytes) else str(v) for k, v in event.get_attributes().items()
			},
			"data": event.get_data(),
		}

	return _read(_consumer(bootstrap, topic), int(count), decode)


def produce_registry(bootstrap: str, registry: str, topic: str, kind: str, schema: str, items: str) -> dict:
	"""``items`` produced with confluent-kafka's JSONSerializer or AvroSerializer (schema registered)."""
	from confluent_kafka import Producer
	from confluent_kafka.schema_registry import SchemaRegistryClient
	from confluent_kafka.serialization import MessageField, SerializationContext

	client = SchemaRegistryClient({"url": registry})
	if kind == "json":
		from confluent_kafka.schema_registry.json_schema import JSONSerializer

		serializer = JSONSerializer(schema, client)
	else:
		from confluent_kafka.schema_registry.avro import AvroSerializer

		serializer = AvroSerializer(client, schema)
	p = Producer({"bootstrap.servers": bootstrap})
	for item in json.loads(items):
		value = serializer(item["value"], SerializationContext(topic, MessageField.VALUE))
		p.produce(topic, value=value, key=item.get("key"), headers=item.get("headers") or [])
	return {"left": p.flush(30)}


def produce_structured(bootstrap: str, topic: str, event: str) -> dict:
	"""A CloudEvent in structured mode, made by the CloudEvents SDK."""
	from cloudevents.v1.http import CloudEvent
	from cloudevents.v1.kafka import to_structured
	from confluent_kafka import Producer

	data = json.loads(event)
	message = to_structured(CloudEvent(data["attributes"], data["data"]))
	p = Producer({"bootstrap.servers": bootstrap})
	p.produce(topic, value=message.value, key=message.key, headers=list(message.headers.items()))
	return {"left": p.flush(30)}


def main() -> None:
	command, *args = sys.argv[1:]
	run = {"read-registry-json": read_registry_json, "read-cloudevents": read_cloudevents,
		"produce-registry": produce_registry, "produce-structured": produce_structured}[command]  # fmt: skip
	print(json.dumps(run(*args), default=str))


if __name__ == "__main__":
	main()
