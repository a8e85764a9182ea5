"""Job functions the integration tests enqueue by dotted path (the real one needs Frappe), and the
stored positions they keep: a Redis stand-in for Message Log and Spine Consumer Offset."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import redis

from spine.kafka.stored import TP, continuation, job_parts

RESULTS_KEY = "spine-test:stored"
POSITIONS_KEY = "spine-test:positions"
TOPIC_IDS_KEY = "spine-test:topic-ids"


def _conn() -> redis.Redis:
	return redis.Redis.from_url(os.environ.get("SPINE_TEST_REDIS", "redis://127.0.0.1:6379/13"))


def _field(group: str, topic: str, partition: int) -> str:
	return f"{group}|{topic}|{partition}"


def store(site: str, records: list, queue_name: str, position: dict | None = None) -> int:
	"""Append the records to a Redis list, as intake stores them in Message Log, moving each
	partition's stored position by the same rule in the same (Redis) transaction."""
	conn = _conn()
	parts = job_parts(records, position) if position else [(None, records, None)]
	with conn.pipeline() as pipe:
		while True:
			try:
				fields = [_field(position["group"], *tp) for tp, _, _ in parts] if position else []
				if fields:
					pipe.watch(POSITIONS_KEY)
				plan = []
				for (_tp, part, after), field in zip(parts, fields or [None] * len(parts), strict=True):
					if field is None:
						plan.append((part, None, None))
						continue
					at = pipe.hget(POSITIONS_KEY, field)
					fresh, until = continuation(part, after, int(at) if at is not None else after)
					plan.append((fresh, field, until))
				pipe.multi()
				for fresh, field, until in plan:
					for rec in fresh:
						pipe.rpush(RESULTS_KEY, json.dumps({"site": site, "queue": queue_name, **rec}))
					if until is not None:
						pipe.hset(POSITIONS_KEY, field, until)
				pipe.execute()
				return sum(len(fresh) for fresh, _, _ in plan)
			except redis.WatchError:
				continue


class RedisPositions:
	"""``StoredOffsets`` kept where ``store`` moves them."""

	def __init__(self, group: str, conn: redis.Redis | None = None):
		self.group = group
		self.conn = conn or _conn()
		self.begun: list[dict[TP, int]] = []

	def stored(self, partitions: Sequence[TP]) -> dict[TP, int]:
		tps = list(partitions)
		values = self.conn.hmget(POSITIONS_KEY, [_field(self.group, t, p) for t, p in tps]) if tps else []
		return {tp: int(v) for tp, v in zip(tps, values, strict=True) if v is not None}

	def begin(self, starts: dict[TP, int], topic_ids: dict[TP, str] | None = None) -> None:
		self.begun.append(dict(starts))
		for (t, p), at in starts.items():
			self.conn.hset(POSITIONS_KEY, _field(self.group, t, p), at)
			self.conn.hset(TOPIC_IDS_KEY, _field(self.group, t, p), (topic_ids or {}).get((t, p), ""))

	def topic_ids(self, partitions: Sequence[TP]) -> dict[TP, str]:
		tps = list(partitions)
		values = self.conn.hmget(TOPIC_IDS_KEY, [_field(self.group, t, p) for t, p in tps]) if tps else []
		return {tp: v.decode() for tp, v in zip(tps, values, strict=True) if v}

	def set_topic_ids(self, ids: dict[TP, str]) -> None:
		for (t, p), tid in ids.items():
			self.conn.hset(TOPIC_IDS_KEY, _field(self.group, t, p), tid)


class Direct:
	"""A hand-over that stores at once (as if a worker ran the job immediately)."""

	def __init__(self, site: str = "s", group: str = "g", seen: list | None = None, fail: int = 0):
		self.site, self.group = site, group
		self.seen = seen if seen is not None else []
		self.fail = fail  # raise this many times first
		self.calls = 0

	def __call__(self, records: list, starts: dict) -> dict:
		self.calls += 1
		if self.calls <= self.fail:
			raise ConnectionError("redis is down")
		self.seen.extend(records)
		ids = {}
		for tp in {(r["topic"], r["partition"]) for r in records}:
			part = [r for r in records if (r["topic"], r["partition"]) == tp]
			store(self.site, part, "direct", {"group": self.group, "starts": [[*tp, starts[tp]]]})
			ids[tp] = f"direct-{self.calls}"
		return ids

	def busy(self) -> bool:
		return False

	def vanished(self, job_id: str) -> bool:
		return True  # it stored before returning: nothing can still be on its way

	def forget(self, tp: TP) -> None:
		pass
