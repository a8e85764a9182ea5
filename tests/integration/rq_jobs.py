"""Job functions the integration tests enqueue by dotted path (the real one needs Frappe)."""

import json
import os

import redis

RESULTS_KEY = "spine-test:stored"


def store(site: str, records: list, queue_name: str) -> int:
	"""Append every record to a Redis list, as intake would store them in Message Log."""
	conn = redis.Redis.from_url(os.environ.get("SPINE_TEST_REDIS", "redis://127.0.0.1:6379/13"))
	for rec in records:
		conn.rpush(RESULTS_KEY, json.dumps({"site": site, "queue": queue_name, **rec}))
	return len(records)
