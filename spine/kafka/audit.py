"""What vanished and must be read again: the dispatcher's check of its hand-overs. Plain Python.

Every ``every`` seconds the stored positions of the partitions with outstanding hand-overs are
read; what they passed is settled and committed (``Commits``), and a partition whose oldest
outstanding hand-over can no longer be stored (its job gone from Redis, ended without storing,
or never registered by a worker that died) is read again from its stored position, without a
restart. A message read twice is stored once, so reading again is harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition

from spine.kafka.commits import Commits
from spine.kafka.handover import HandOver
from spine.kafka.outstanding import Handed, Outstanding
from spine.kafka.stored import TP, StoredOffsets

log = logging.getLogger(__name__)


class Audit:
	"""Settle, commit and read again, on a schedule or when asked."""

	def __init__(
		self,
		name: str,
		offsets: StoredOffsets,
		handover: HandOver,
		outstanding: Outstanding,
		commits: Commits,
		every: float,
		on_read_again: Callable[[TP], None],
	):
		self.name = name
		self.offsets = offsets
		self.handover = handover
		self.outstanding = outstanding
		self.commits = commits
		self.every = every
		self.on_read_again = on_read_again
		self.next_at = 0.0
		self.rewinds = 0  # partitions read again because a hand-over vanished

	def due(self) -> bool:
		return time.monotonic() >= self.next_at

	def __call__(
		self, consumer: Consumer, partitions: Sequence[TP] | None = None, *, read_again: bool = True
	) -> bool:
		"""Commit what is stored; read again a partition whose hand-over vanished. Returns whether
		some partition is read again."""
		self.next_at = time.monotonic() + self.every
		tps = list(partitions) if partitions is not None else self.outstanding.waiting()
		if not tps:
			return False
		try:
			stored = self.offsets.stored(tps)
		except Exception as e:
			log.warning(
				"%s: could not read the stored offsets (%s); committing nothing for now", self.name, e
			)
			return False
		self.outstanding.settle(stored)
		self.commits.commit(consumer, stored)
		rewound = False
		for tp in tps if read_again else ():
			oldest = self.outstanding.oldest(tp)
			if oldest is None or not self._vanished(oldest):
				continue
			try:  # read again: the job may have stored just before it ended
				at = self.offsets.stored([tp]).get(tp, oldest.after)
			except Exception:
				continue
			if at >= oldest.until:
				continue
			rewound |= self._read_again(consumer, tp, at, oldest)
		return rewound

	def _vanished(self, handed: Handed) -> bool:
		try:
			return handed.job_id is None or self.handover.vanished(handed.job_id)
		except Exception as e:
			log.debug("%s: could not check job %s: %s", self.name, handed.job_id, e)
			return False  # unknown (Redis unreachable?): look again at the next check

	def _read_again(self, consumer: Consumer, tp: TP, at: int, lost: Handed) -> bool:
		log.warning(
			"%s: messages %s[%d]@%d-%d were handed over (job %s) but the job vanished before storing "
			"them (Redis restarted, flushed or lost it); reading %s[%d] again from offset %d",
			self.name, tp[0], tp[1], lost.after, lost.until - 1, lost.job_id, tp[0], tp[1], at,
		)  # fmt: skip
		try:
			consumer.seek(TopicPartition(tp[0], tp[1], at))
		except KafkaException as e:
			log.warning("%s: could not seek %s[%d] to %d (%s); leaving it to the next assignment",
				self.name, tp[0], tp[1], at, e)  # fmt: skip
			return False
		self.outstanding.rewind(tp, at)
		self.on_read_again(tp)
		self.handover.forget(tp)
		self.rewinds += 1
		return True
