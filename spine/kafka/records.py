"""Kafka messages as JSON-able records: what a hand-over job carries. Plain Python.

Text stays text; other bytes travel as base64 and come back unchanged with ``record_value``.
"""

from __future__ import annotations

import base64
from typing import Any

from confluent_kafka import Message

Record = dict[str, Any]


def to_record(msg: Message) -> Record:
	"""A JSON-able copy of a Kafka message: text stays text, other bytes travel as base64."""
	value, value_b64 = _text_or_b64(msg.value())
	key, key_b64 = _text_or_b64(msg.key())
	ts_type, ts = msg.timestamp()
	return {
		"topic": msg.topic(),
		"partition": msg.partition(),
		"offset": msg.offset(),
		"key": key,
		"key_b64": key_b64,
		"value": value,
		"value_b64": value_b64,
		"headers": {k: _text_or_b64(v)[0] for k, v in (msg.headers() or [])},
		"timestamp_ms": ts if ts_type else None,
	}


def record_value(record: Record) -> bytes | None:
	"""The original message value of a record made by ``to_record``."""
	value = record.get("value")
	if value is None:
		return None
	return base64.b64decode(value) if record.get("value_b64") else value.encode()


def span(records: list[Record]) -> str:
	"""``topic[p]@first-last, ...``: which messages a batch holds, for a log line."""
	parts: dict[tuple[str, int], list[int]] = {}
	for r in records:
		parts.setdefault((r["topic"], r["partition"]), []).append(r["offset"])
	return ", ".join(f"{t}[{p}]@{min(o)}-{max(o)}" for (t, p), o in sorted(parts.items()))


def _text_or_b64(data: bytes | None) -> tuple[str | None, bool]:
	if data is None:
		return None, False
	try:
		return data.decode("utf-8"), False
	except UnicodeDecodeError:
		return base64.b64encode(data).decode(), True
