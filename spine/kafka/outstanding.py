"""What the dispatcher handed over and the database does not hold yet, per partition. Plain Python.

Each hand-over of a partition's messages is remembered (where it continues from, where it ends,
its job) until the stored position passes it; ``next`` is where the partition's next hand-over
continues from, ``begun`` the partitions whose start is recorded durably.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from spine.kafka.records import Record
from spine.kafka.stored import TP


@dataclass
class Handed:
	after: int  # the batch continues the partition from this offset
	until: int  # offset after its last message
	job_id: str | None


class Outstanding:
	"""Hand-overs not yet stored, per partition."""

	def __init__(self) -> None:
		self.queues: dict[TP, deque[Handed]] = {}
		self.next: dict[TP, int] = {}
		self.begun: set[TP] = set()

	def spans(self, records: list[Record]) -> tuple[dict[TP, int], dict[TP, int]]:
		"""``(starts, ends)`` of a batch: per partition, the offset it continues from (after the
		previous hand-over, or its first message) and the offset after its last message."""
		starts: dict[TP, int] = {}
		ends: dict[TP, int] = {}
		for r in records:
			tp = (r["topic"], r["partition"])
			starts.setdefault(tp, self.next.get(tp, r["offset"]))
			ends[tp] = r["offset"] + 1
		return starts, ends

	def unbegun(self, starts: dict[TP, int]) -> dict[TP, int]:
		"""The partitions of ``starts`` whose start is not recorded yet."""
		return {tp: at for tp, at in starts.items() if tp not in self.begun}

	def add(self, starts: dict[TP, int], ends: dict[TP, int], jobs: dict[TP, str]) -> None:
		for tp, at in starts.items():
			self.queues.setdefault(tp, deque()).append(Handed(at, ends[tp], jobs.get(tp)))
			self.next[tp] = ends[tp]

	def settle(self, stored: dict[TP, int]) -> None:
		"""Forget the hand-overs the stored positions passed."""
		for tp, at in stored.items():
			queue = self.queues.get(tp)
			while queue and queue[0].until <= at:
				queue.popleft()

	def waiting(self) -> list[TP]:
		"""Partitions with a hand-over not stored yet."""
		return [tp for tp, q in self.queues.items() if q]

	def oldest(self, tp: TP) -> Handed | None:
		queue = self.queues.get(tp)
		return queue[0] if queue else None

	def rewind(self, tp: TP, at: int) -> None:
		"""The partition is read again from ``at``: what was handed over after it no longer counts."""
		self.queues.get(tp, deque()).clear()
		self.next[tp] = at

	def restart(self, tp: TP, stored: int | None) -> None:
		"""A newly assigned partition: continues from its stored position (then its start is recorded
		already), or from wherever Kafka starts it."""
		self.forget([tp])
		if stored is not None:
			self.next[tp] = stored
			self.begun.add(tp)

	def forget(self, tps: Iterable[TP]) -> None:
		for tp in tps:
			self.queues.pop(tp, None)
			self.next.pop(tp, None)
			self.begun.discard(tp)
