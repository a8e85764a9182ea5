"""When to try a failed message again. Plain Python: importing it never imports Frappe."""

from __future__ import annotations

import datetime
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
	"""Exponential backoff: the n-th failure waits ``base_seconds * 2**(n-1)``, at most ``max_seconds``.

	After ``max_attempts`` failed attempts the message is given up on (``should_retry`` is False).
	"""

	max_attempts: int = 5
	base_seconds: int = 30
	max_seconds: int = 3600

	def __post_init__(self) -> None:
		if self.max_attempts < 1:
			raise ValueError(f"max_attempts must be at least 1 (got {self.max_attempts})")
		if self.base_seconds < 0:
			raise ValueError(f"base_seconds must not be negative (got {self.base_seconds})")
		if self.max_seconds < self.base_seconds:
			raise ValueError(
				f"max_seconds ({self.max_seconds}) must be at least base_seconds ({self.base_seconds})"
			)

	def should_retry(self, attempts: int) -> bool:
		"""True while a message that has failed ``attempts`` times may be tried again."""
		return attempts < self.max_attempts

	def delay(self, attempts: int) -> datetime.timedelta:
		"""How long to wait after the ``attempts``-th failure (``attempts`` >= 1)."""
		exponent = max(attempts - 1, 0)
		seconds = (
			self.max_seconds if exponent >= 32 else min(self.base_seconds * 2**exponent, self.max_seconds)
		)
		return datetime.timedelta(seconds=seconds)

	def next_attempt_at(self, attempts: int, now: datetime.datetime) -> datetime.datetime:
		"""The earliest time of the next attempt after the ``attempts``-th failure at ``now``."""
		return now + self.delay(attempts)
