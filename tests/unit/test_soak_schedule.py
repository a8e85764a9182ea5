"""The soak's seeded fault schedule (tests/soak/schedule.py): replayable, complete, never overlapping."""

from __future__ import annotations

import itertools

import pytest

from tests.soak import schedule


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
	one, again, other = schedule.draw(7, 20), schedule.draw(7, 20), schedule.draw(8, 20)
	assert one.faults == again.faults
	assert one.faults != other.faults


def test_an_hour_has_every_kind_at_least_five_times():
	drawn = schedule.draw(1, 60)
	counts = drawn.counts()
	assert set(counts) == set(schedule.KINDS)
	assert min(counts.values()) >= 5, counts


def test_outages_never_overlap_and_leave_time_to_recover():
	for seed in range(20):
		outages = schedule.draw(seed, 30).outages()
		for before, after in itertools.pairwise(outages):
			assert before.at + before.seconds + schedule.RECOVERY_SECONDS <= after.at + 1e-6, (
				seed,
				before,
				after,
			)


def test_everything_happens_between_warm_up_and_cool_down():
	drawn = schedule.draw(3, 10)
	end = drawn.traffic_seconds - schedule.COOL_DOWN_SECONDS
	assert all(schedule.WARM_UP_SECONDS <= f.at and f.at + f.seconds <= end for f in drawn.faults)
	assert all(f.site in ("a", "b") for f in drawn.faults)


def test_durations_stay_within_each_kinds_range():
	for f in schedule.draw(5, 30).outages():
		low, high = schedule.DURATIONS[f.kind]
		assert low <= f.seconds <= high, f


def test_too_short_a_soak_says_how_long_it_must_be():
	with pytest.raises(ValueError, match="too short"):
		schedule.draw(1, 2)
	with pytest.raises(ValueError, match="do not fit"):
		schedule.draw(1, 5, per_kind=3)
