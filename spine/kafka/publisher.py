"""Publishing records to Kafka with broker confirmation. Plain Python: never imports Frappe.

``Publisher`` is the small protocol the relay depends on; ``KafkaPublisher`` is the
confluent-kafka implementation (one idempotent producer per process, reused across batches).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from spine.config.kafka import redact
from spine.kafka import broker_errors
from spine.kafka.admin import partition_health

log = logging.getLogger(__name__)

# Spare time, beyond librdkafka's own message.timeout.ms, to wait for the last delivery reports.
_REPORT_MARGIN_SECONDS = 5.0


class OutRecord(NamedTuple):
	"""One message to publish; ``ref`` identifies it to the caller (the outbox row's name)."""

	ref: Any
	topic: str
	key: str
	value: bytes
	headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class Delivery:
	"""The broker's answer for one record: published at (partition, offset), or an error.

	``retriable`` is False for errors that will not go away by trying again (message too
	large, an invalid record): the caller should park the
	record for an operator instead of retrying it forever.
	"""

	ref: Any
	partition: int | None = None
	offset: int | None = None
	error: str | None = None
	retriable: bool = True

	@property
	def ok(self) -> bool:
		return self.error is None


class Publisher(Protocol):
	def publish(self, records: Sequence[OutRecord]) -> list[Delivery]:
		"""Publish ``records`` in order; return one Delivery per record, in the same order."""
		...


class KafkaPublisher:
	"""Publishes through one long-lived idempotent confluent-kafka producer.

	Guarantees: ``publish`` returns only when every record has a definitive delivery report
	(success with partition and offset, or failure), so a caller that marks records published
	only on success never loses one and never reports one as published that the broker has not
	acknowledged. With ``enable.idempotence`` (forced by ``spine.config.kafka``), records of one
	key reach their partition in the order given, without duplicates from internal retries.
	"""

	def __init__(self, conf: dict[str, Any]):
		self.conf = dict(conf)
		self._producer: Producer | None = None
		timeout_ms = int(
			self.conf.get("message.timeout.ms") or self.conf.get("delivery.timeout.ms") or 300_000
		)
		self.report_timeout = timeout_ms / 1000 + _REPORT_MARGIN_SECONDS

	@property
	def producer(self) -> Producer:
		if self._producer is None:
			self._producer = Producer(self.conf)
			log.info("Spine producer connected to %s", redact(self.conf).get("bootstrap.servers"))
		return self._producer

	def publish(self, records: Sequence[OutRecord]) -> list[Delivery]:
		results: dict[int, Delivery] = {}
		unhealthy: dict[str, int] = {}  # topics whose deliveries failed on the cluster's state
		producer = self.producer

		def report(index: int, ref: Any):
			def on_delivery(err: KafkaError | None, msg) -> None:
				if err is None:
					results[index] = Delivery(ref, partition=msg.partition(), offset=msg.offset())
				else:
					error = _describe(err)
					if broker_errors.classify(err) == broker_errors.CLUSTER:
						unhealthy[msg.topic()] = msg.partition()
					results[index] = Delivery(ref, error=error, retriable=_retriable(err))
					if broker_errors.classify(err) == broker_errors.FATAL:
						self._reset(f"fatal producer error: {_describe(err)}")

			return on_delivery

		for index, rec in enumerate(records):
			while True:
				try:
					producer.produce(
						rec.topic,
						value=rec.value,
						key=rec.key,
						headers=rec.headers,
						on_delivery=report(index, rec.ref),
					)
					break
				except BufferError:
					producer.poll(0.05)  # local queue full: serve delivery reports, then try again
				except KafkaException as e:
					err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
					results[index] = Delivery(
						rec.ref,
						error=_describe(err) if err else str(e),
						retriable=_retriable(err) if err else True,
					)
					break
			producer.poll(0)

		deadline = time.monotonic() + self.report_timeout
		while len(results) < len(records) and time.monotonic() < deadline:
			producer.flush(min(1.0, max(deadline - time.monotonic(), 0)))
		missing = [i for i in range(len(records)) if i not in results]
		if missing:
			# librdkafka did not answer within message.timeout.ms: the producer is stuck. Start over
			# with a new one so a late success cannot race with the caller's retry.
			self._reset(f"no delivery report for {len(missing)} records within {self.report_timeout:.0f}s")
			for i in missing:
				results[i] = Delivery(records[i].ref, error="no delivery report from the broker in time")
		if unhealthy:
			results = self._with_cluster_state(results, records, unhealthy)
		return [results[i] for i in range(len(records))]

	def _with_cluster_state(self, results: dict[int, Delivery], records: Sequence[OutRecord],
			unhealthy: dict[str, int]) -> dict[int, Delivery]:  # fmt: skip
		"""Failed deliveries of ``unhealthy`` topics say what the cluster's metadata shows (once per topic)."""
		states = {t: partition_health(self.producer, t) for t in unhealthy}
		for i, d in results.items():
			state = states.get(records[i].topic)
			if not d.ok and state:
				results[i] = Delivery(d.ref, error=f"{d.error} ({state})", retriable=d.retriable)
		return results

	def close(self, timeout: float = 10) -> None:
		"""Deliver what is queued (up to ``timeout`` seconds) and drop the producer."""
		if self._producer is not None:
			self._producer.flush(timeout)
			self._producer = None

	def _reset(self, reason: str) -> None:
		log.warning("Spine producer restarted (%s); unconfirmed records stay pending and are retried", reason)
		self._producer = None


_shared: dict[tuple, KafkaPublisher] = {}
_shared_lock = threading.Lock()


def shared_publisher(conf: dict[str, Any]) -> KafkaPublisher:
	"""The process's publisher for ``conf``: created once per process and settings, reused after.

	Keyed by process id, so a forked worker never reuses its parent's librdkafka threads.
	"""
	key = (os.getpid(), tuple(sorted((k, str(v)) for k, v in conf.items())))
	with _shared_lock:
		pub = _shared.get(key)
		if pub is None:
			for stale in [k for k in _shared if k[0] != os.getpid()]:
				_shared.pop(stale, None)
			pub = _shared[key] = KafkaPublisher(conf)
		return pub


_describe = broker_errors.describe


def _retriable(err: KafkaError) -> bool:
	return broker_errors.retriable(err)
