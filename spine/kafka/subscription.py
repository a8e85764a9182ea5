"""What the dispatcher follows: its topics, and where each assigned partition starts. Plain Python.

Topics are asked for every ``refresh_seconds`` (a config change is followed without a restart).
An assigned partition starts where the durable copy ends (its stored position). A stored position
counts where the group has a committed offset on the broker, or, without one, where the topic is
still the one it was stored from (the same Kafka topic id): the group's offsets expired
(``offsets.retention.minutes``) or were deleted, and nothing stored is read as new. Otherwise the
topic was made again or the broker is another one: the position belongs to messages that are gone,
so the partition starts where ``auto.offset.reset`` says and its start is recorded anew.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition

from spine.kafka.commits import Commits
from spine.kafka.doorbell import Waiter
from spine.kafka.holding import Holding
from spine.kafka.idle_rest import IdleRest
from spine.kafka.late_topics import LateTopics
from spine.kafka.outstanding import Outstanding
from spine.kafka.stored import TP, StoredOffsets

log = logging.getLogger(__name__)


class Subscription:
	"""Subscribe, assign, revoke: the dispatcher's side of the consumer group."""

	def __init__(
		self,
		name: str,
		topics: Callable[[], Sequence[str]],
		offsets: StoredOffsets,
		outstanding: Outstanding,
		commits: Commits,
		holding: Holding,
		idle: IdleRest,
		audit: Callable[..., bool],
		forget_handed: Callable[[TP], None],
		*,
		cooperative: bool = False,
		doorbell: Waiter | None = None,
		topic_ids: Callable[[Sequence[str]], dict[str, str]] | None = None,
		late: LateTopics | None = None,
	):
		self.name = name
		self.topics = topics
		self.offsets = offsets
		self.outstanding = outstanding
		self.commits = commits
		self.holding = holding
		self.idle = idle
		self.audit = audit
		self.forget_handed = forget_handed
		self.cooperative = cooperative
		self.doorbell = doorbell
		self.lookup_ids = topic_ids
		self.late = late
		self.subscribed: list[str] = []
		self.ids: dict[str, str] = {}  # ids of the assigned topics, as the broker named them at assignment

	def refresh(self, consumer: Consumer) -> None:
		"""Follow ``topics()`` now (nothing changes when it fails: the error is logged)."""
		try:
			wanted = sorted(set(self.topics()))
		except Exception as e:
			log.error(
				"%s: could not read the topics to follow (%s); keeping %s", self.name, e, self.subscribed
			)
			return
		if wanted == self.subscribed:
			self._rejoin_for_late_topics(consumer)
			return
		if wanted:
			consumer.subscribe(wanted, on_revoke=self.on_revoke, on_assign=self.on_assign)
			log.info("%s: following topics %s", self.name, ", ".join(wanted))
			if self.late:
				self.late.keep_only(wanted)
				self.late.watch(set(wanted) - set(self.subscribed))
		else:
			self.leave(consumer, [(tp.topic, tp.partition) for tp in consumer.assignment()])
			consumer.unsubscribe()
			log.warning("%s: no topics configured in Spine Consumer Config; waiting for some", self.name)
		self.subscribed = wanted
		if self.doorbell:
			self.doorbell.topics = frozenset(wanted)

	def _rejoin_for_late_topics(self, consumer: Consumer) -> None:
		late = self.late.due() if self.late and self.subscribed else []
		if late:
			log.warning(
				"%s: topic(s) %s exist, but no member of the group has been assigned any of their "
				"partitions for %gs or more; joining the group again so they are assigned",
				self.name, ", ".join(late), self.late.every,
			)  # fmt: skip
			consumer.subscribe(self.subscribed, on_revoke=self.on_revoke, on_assign=self.on_assign)

	def begin_ids(self, tps: Sequence[TP]) -> dict[TP, str]:
		"""The topic ids to record with the starts of ``tps``."""
		return {tp: self.ids[tp[0]] for tp in tps if tp[0] in self.ids}

	def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
		tps = [(p.topic, p.partition) for p in partitions]
		if self.late:
			self.late.assigned({t for t, _ in tps})
		self.holding.drop(tps)
		self.idle.forget(tps)
		if self.lookup_ids:
			self.ids.update(self.lookup_ids(sorted({t for t, _ in tps})))
		stored = self._starts(consumer, tps)
		for p in partitions:
			tp = (p.topic, p.partition)
			self.outstanding.restart(tp, stored.get(tp))
			if tp in stored:
				p.offset = stored[tp]
		if self.cooperative:
			consumer.incremental_assign(partitions)
		else:
			consumer.assign(partitions)
		log.info(
			"%s: assigned %s", self.name,
			", ".join(f"{t}[{p}]" + (f" from stored offset {stored[(t, p)]}" if (t, p) in stored else "")
				for t, p in tps) or "none",
		)  # fmt: skip

	def _starts(self, consumer: Consumer, tps: list[TP]) -> dict[TP, int]:
		"""The stored positions that apply to ``tps`` (see the module's docstring)."""
		try:
			stored = self.offsets.stored(tps)
		except Exception as e:
			log.warning(
				"%s: could not read the stored offsets (%s); starting from the committed offsets, which "
				"never run ahead of them", self.name, e,
			)  # fmt: skip
			return {}
		if not stored:
			return stored
		try:
			on_broker = {
				(c.topic, c.partition): c.offset
				for c in consumer.committed([TopicPartition(t, p) for t, p in stored], timeout=10)
				if c.offset >= 0
			}
		except KafkaException as e:
			log.warning(
				"%s: could not read the committed offsets (%s); trusting the stored ones", self.name, e
			)
			return stored
		self.commits.learn(on_broker)
		recorded = self._recorded_ids(list(stored))
		same_topic = {tp for tp, tid in recorded.items() if self.ids.get(tp[0]) == tid}
		for tp in sorted(set(stored) - set(on_broker)):
			t, p = tp
			if tp in same_topic:
				log.warning(
					"%s: the group has no committed offset on %s[%d] any more (it expired after the broker's "
					"offsets.retention.minutes, or was deleted), but the topic is the one it was stored from "
					"(id %s): resuming from stored offset %d", self.name, t, p, recorded[tp], stored[tp],
				)  # fmt: skip
				continue
			log.warning(
				"%s: %s[%d] was stored up to %d, but the group has no committed offset there (the topic "
				"was made again, or this is another broker); reading it from where auto.offset.reset "
				"says and storing from there", self.name, t, p, stored.pop(tp),
			)  # fmt: skip
		unrecorded = {tp: self.ids[tp[0]] for tp in stored if tp in on_broker and tp[0] in self.ids
			and recorded.get(tp) != self.ids[tp[0]]}  # fmt: skip
		if unrecorded:  # positions stored before topic ids were recorded, confirmed by the broker
			try:
				self.offsets.set_topic_ids(unrecorded)
			except Exception as e:
				log.debug("%s: topic ids not recorded: %s", self.name, e)
		return stored

	def _recorded_ids(self, tps: list[TP]) -> dict[TP, str]:
		if not self.ids:
			return {}
		try:
			return self.offsets.topic_ids(tps)
		except Exception as e:
			log.debug("%s: could not read the recorded topic ids (%s)", self.name, e)
			return {}

	def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
		log.info(
			"%s: partitions %s revoked; committing what is stored", self.name,
			", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "none",
		)  # fmt: skip
		self.leave(consumer, [(p.topic, p.partition) for p in partitions])

	def leave(self, consumer: Consumer, tps: list[TP]) -> None:
		"""Partitions moving away: commit what is stored, forget everything about them."""
		self.idle.forget(tps)
		if tps:
			self.audit(consumer, tps, read_again=False)
		self.holding.drop(tps)
		self.outstanding.forget(tps)
		self.commits.forget(tps)
		for tp in tps:
			self.forget_handed(tp)
