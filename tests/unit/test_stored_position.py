"""The rule that moves a partition's stored position (spine.kafka.stored.continuation)."""

from spine.kafka.stored import continuation


def recs(*offsets):
	return [{"topic": "t", "partition": 0, "offset": o} for o in offsets]


def test_a_batch_that_continues_the_stored_position_is_stored_and_moves_it():
	assert continuation(recs(10, 11, 12), after=10, stored_at=10) == (recs(10, 11, 12), 13)


def test_offsets_skipped_by_kafka_still_continue():
	"""Compaction or transaction markers leave gaps in offsets: the batch still continues from ``after``."""
	assert continuation(recs(14, 20), after=10, stored_at=10) == (recs(14, 20), 21)


def test_a_batch_after_a_lost_one_stores_nothing():
	assert continuation(recs(20, 21), after=20, stored_at=10) == ([], None)


def test_a_batch_read_again_stores_only_what_is_new():
	assert continuation(recs(8, 9, 10, 11), after=8, stored_at=10) == (recs(10, 11), 12)


def test_a_batch_stored_before_stores_nothing():
	assert continuation(recs(3, 4), after=3, stored_at=10) == ([], None)
	assert continuation([], after=3, stored_at=3) == ([], None)
