"""LateTopics: which subscribed topics exist but were assigned to no member, seen so twice."""

from __future__ import annotations

from spine.kafka.late_topics import LateTopics


class World:
	def __init__(self):
		self.now = 0.0
		self.topics: set[str] = set()
		self.in_group: set[str] | None = set()
		self.asked = 0

	def existing(self, topics):
		self.asked += 1
		return topics & self.topics

	def group_topics(self):
		return self.in_group

	def late(self) -> LateTopics:
		return LateTopics(self.existing, self.group_topics, every=10, clock=lambda: self.now)


def test_a_topic_that_exists_and_stays_unassigned_is_due_at_the_second_check():
	w = World()
	late = w.late()
	late.watch({"a"})
	w.now = 5
	assert late.due() == [] and w.asked == 0, "not before a check is due"
	w.topics = {"a"}
	w.now = 10
	assert late.due() == [], "the first sighting could race the leader's own refresh"
	w.now = 15
	assert late.due() == [], "between checks nothing is asked"
	w.now = 20
	assert late.due() == ["a"]
	w.now = 30
	assert late.due() == [], "after a rejoin it is suspected afresh, not at once"


def test_a_topic_assigned_here_or_to_another_member_is_not_late():
	w = World()
	late = w.late()
	late.watch({"here", "there"})
	w.topics = {"here", "there"}
	late.assigned({"here"})
	w.in_group = {"there"}
	for w.now in (10, 20, 30):
		assert late.due() == []
	assert late.watched == set(), "both stop being watched"


def test_a_missing_topic_is_never_due_and_an_unknown_group_decides_nothing():
	w = World()
	late = w.late()
	late.watch({"missing", "a"})
	w.topics = {"a"}
	w.in_group = None  # the coordinator does not answer
	for w.now in (10, 20, 30):
		assert late.due() == []
	w.in_group = set()
	w.now = 40
	assert late.due() == []
	w.now = 50
	assert late.due() == ["a"], "'missing' does not exist, so it is not late"


def test_a_topic_no_longer_followed_is_forgotten():
	w = World()
	late = w.late()
	late.watch({"a", "b"})
	w.topics = {"a", "b"}
	w.now = 10
	late.due()
	late.keep_only({"b"})
	w.now = 20
	assert late.due() == ["b"]


def test_a_failing_broker_check_finds_nothing():
	w = World()
	late = LateTopics(lambda topics: 1 / 0, w.group_topics, every=10, clock=lambda: w.now)
	late.watch({"a"})
	w.now = 10
	assert late.due() == []
