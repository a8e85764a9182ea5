"""Where a partition's durable copy ends, and the one rule that moves it. Plain Python.

A consumer group's position per partition is "stored up to": the offset of the next message to
store. It moves only over a batch that continues from it, so everything before it is stored.
The dispatcher commits Kafka offsets up to it and resumes from it; the intake moves it in the
transaction that stores the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

TP = tuple[str, int]
"""A partition: (topic, partition)."""


class StoredOffsets(Protocol):
	"""The durable copy's position per partition."""

	def stored(self, partitions: Sequence[TP]) -> dict[TP, int]:
		"""Positions of those of ``partitions`` that have one (read afresh each call)."""

	def begin(self, starts: dict[TP, int], topic_ids: dict[TP, str] | None = None) -> None:
		"""Record (durably) where reading starts for partitions that have no position that applies,
		replacing one left from another life of the topic; with the topic's id where known."""

	def topic_ids(self, partitions: Sequence[TP]) -> dict[TP, str]:
		"""The topic id recorded with each of ``partitions``' positions, where one was."""

	def set_topic_ids(self, ids: dict[TP, str]) -> None:
		"""Record the topic id of positions recorded before ids were (the broker confirmed them)."""


def continuation(
	records: Sequence[dict[str, Any]], after: int, stored_at: int
) -> tuple[list[dict[str, Any]], int | None]:
	"""What to store of one partition's ``records`` (which continue the partition from ``after``)
	when it is stored up to ``stored_at``, and the new position (None: it stays).

	Nothing is stored when the records do not continue from the stored position (something before
	them was lost: storing them would leave a hole) or when all of them are stored already.
	"""
	if not records or after > stored_at:
		return [], None
	until = records[-1]["offset"] + 1
	if until <= stored_at:
		return [], None
	return [r for r in records if r["offset"] >= stored_at], until


def job_parts(
	records: Sequence[dict[str, Any]], position: dict[str, Any]
) -> list[tuple[TP, list[dict[str, Any]], int]]:
	"""A hand-over job's records split by partition, each with the offset it continues from.

	``position`` is ``{"group", "starts": [[topic, partition, after], ...]}``; a job queued by an
	earlier release holds one partition and ``"after": offset``.
	"""
	groups: dict[TP, list[dict[str, Any]]] = {}
	for rec in records:
		groups.setdefault((rec["topic"], rec["partition"]), []).append(rec)
	if "after" in position:
		return [(tp, part, int(position["after"])) for tp, part in groups.items()]
	starts = {(t, int(p)): int(at) for t, p, at in position["starts"]}
	return [(tp, part, starts[tp]) for tp, part in groups.items()]
