"""Topics the consumer group follows but never assigned: noticed, and the group joined again. Plain
Python.

A consumer that subscribed to a topic before it existed takes it only after the group leader's next
metadata refresh sees the topic and the group rebalances. The soak (seed 8) showed that this can fail
to happen for minutes: a broker restarted, the subscription changed while it came back, the topic was
made moments later, and the site's dispatchers were assigned none of its partitions for the two
minutes that were left, while its messages waited on the broker. Subscribing again (even to the same
topics) makes the member rejoin with fresh metadata, so the topic is assigned at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


class LateTopics:
	"""Which subscribed topics exist but have no partition assigned to any member of the group, seen
	so at two checks ``every`` seconds apart (the first could race the leader's own refresh).

	``existing(topics)`` is which of ``topics`` the broker has; ``group_topics()`` the topics with a
	partition assigned to some member of the group (None when the broker does not say). Both are
	asked only while a watched topic waits, at most once every ``every`` seconds."""

	def __init__(
		self,
		existing: Callable[[set[str]], set[str]],
		group_topics: Callable[[], set[str] | None],
		every: float = 10.0,
		clock: Callable[[], float] = time.monotonic,
	):
		self.existing = existing
		self.group_topics = group_topics
		self.every = every
		self.clock = clock
		self.watched: set[str] = set()
		self.suspect: set[str] = set()
		self.next_check = 0.0

	def watch(self, topics: Iterable[str]) -> None:
		"""``topics`` were just subscribed to: watched until some member is assigned one of their
		partitions."""
		self.watched |= set(topics)
		self.next_check = self.clock() + self.every

	def keep_only(self, topics: Iterable[str]) -> None:
		"""The subscription is now ``topics``: topics no longer followed are not watched."""
		keep = set(topics)
		self.watched &= keep
		self.suspect &= keep

	def assigned(self, topics: Iterable[str]) -> None:
		"""Partitions of ``topics`` were assigned here: they are not late."""
		self.watched -= set(topics)
		self.suspect -= set(topics)

	def due(self) -> list[str]:
		"""The watched topics to rejoin the group for now (empty between checks, or when none is late).
		Never raises: a broker that does not answer makes this check find nothing."""
		if not self.watched or self.clock() < self.next_check:
			return []
		self.next_check = self.clock() + self.every
		try:
			there = self.existing(set(self.watched))
			in_group = self.group_topics() if there else set()
		except Exception:
			return []
		if in_group is None:
			return []
		self.assigned(in_group & self.watched)
		unassigned = there & self.watched
		late = sorted(unassigned & self.suspect)
		self.suspect = unassigned - set(late)
		return late
