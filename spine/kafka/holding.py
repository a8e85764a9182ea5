"""What to hand over and when. Plain Python.

What a poll returns is handed over at once while the hand-over is idle. While it is busy (jobs
already wait in the queue), polls are held and joined into one batch, up to ``batch_size``
messages or ``hold_seconds``: a trickle of single messages becomes fewer, bigger jobs exactly
when the workers are behind, and a message never waits longer than it would in the queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from confluent_kafka import Message

from spine.kafka.handover import HandOver
from spine.kafka.stored import TP

log = logging.getLogger(__name__)


class Holding:
	"""Messages polled and not handed over yet."""

	def __init__(self, name: str, handover: HandOver, batch_size: int, hold_seconds: float):
		self.name = name
		self.handover = handover
		self.batch_size = batch_size
		self.hold_seconds = hold_seconds
		self.held: list[Message] = []
		self.since = 0.0

	def __bool__(self) -> bool:
		return bool(self.held)

	def room(self) -> int:
		"""How many more messages the next batch takes."""
		return self.batch_size - len(self.held)

	def add(self, msgs: list[Message]) -> bool:
		"""Hold ``msgs``; returns whether they start a new batch (nothing was held)."""
		starts = bool(msgs) and not self.held
		if starts:
			self.since = time.monotonic()
		self.held.extend(msgs)
		return starts

	def due(self, stopping: bool) -> bool:
		"""Whether the held messages go now: stopping, the batch is full, they were held long enough,
		or the hand-over is idle (when it cannot tell, they go)."""
		if not self.held:
			return False
		if (
			stopping
			or len(self.held) >= self.batch_size
			or time.monotonic() - self.since >= self.hold_seconds
		):
			return True
		try:
			return not self.handover.busy()
		except Exception as e:
			log.debug("%s: could not tell whether the hand-over is busy (%s); handing over", self.name, e)
			return True

	def take(self) -> list[Message]:
		held, self.held = self.held, []
		return held

	def drop(self, tps: Iterable[TP]) -> None:
		"""Forget held messages of partitions read again or moved away (they are read again)."""
		gone = set(tps)
		self.held = [m for m in self.held if (m.topic(), m.partition()) not in gone]
