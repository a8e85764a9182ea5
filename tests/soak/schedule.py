"""The soak's fault schedule: which fault happens when, drawn from a seed alone.

Plain Python (no Frappe, no broker): the same seed and length always give the same schedule, so a
failing run is replayed by running the soak again with its seed. Faults that stop something
(a process, the broker, Redis, the database's connections, a site's service) never overlap: each
has a slot of its own, so a pause in the flow is put down to the fault that caused it. Config saves
(Spine Producer Config, Spine Consumer Config, a Spine Sync Rule) come in between, at random moments,
while messages flow and whatever else is happening.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

# Faults that stop part of the system for ``seconds``, then bring it back.
OUTAGES = (
	"kill_relay",  # SIGKILL spine-relay; started again after `seconds` (as supervisor would)
	"kill_dispatcher",  # SIGKILL eventdispatcher (and its children); started again
	"kill_jsonworker",  # SIGKILL jsonworker (and its children); started again
	"kill_broker",  # SIGKILL the broker (on a cluster: the leader of the busiest partition); started again
	"kill_redis",  # SIGKILL the queue's Redis; started again (what it held since its last snapshot is gone)
	"kill_db_connections",  # KILL every connection of the sites' database users, every 0.7 s, for `seconds`
	"site_out",  # a site leaves the bench-wide processes (maintenance mode) for `seconds`, then comes back
)
# Config saves while messages flow: rows added, removed, topics changed.
CONFIG_SAVES = ("save_producer_config", "save_consumer_config", "save_sync_rule")
KINDS = OUTAGES + CONFIG_SAVES

# How long an outage of each kind lasts, in seconds (low, high).
DURATIONS = {
	"kill_relay": (0.5, 6.0),
	"kill_dispatcher": (0.5, 6.0),
	"kill_jsonworker": (0.5, 6.0),
	"kill_broker": (3.0, 15.0),
	"kill_redis": (1.0, 8.0),
	"kill_db_connections": (3.0, 10.0),
	"site_out": (5.0, 20.0),
}
WARM_UP_SECONDS = 20.0  # traffic flows this long before the first fault
COOL_DOWN_SECONDS = 30.0  # and this long after the last one ends
RECOVERY_SECONDS = 15.0  # an outage's slot leaves at least this long after it for the flow to settle


@dataclass(frozen=True)
class Fault:
	"""One fault: ``kind`` at ``at`` seconds after the traffic started, for ``seconds`` (outages),
	on ``site`` ("a" or "b": whose process, connections or config; the broker and Redis are shared)."""

	at: float
	kind: str
	seconds: float = 0.0
	site: str = "a"
	pick: int = 0  # a seeded number the fault may use for its own choices (which row, which topic)

	def as_dict(self) -> dict:
		return asdict(self)


@dataclass
class Schedule:
	seed: int
	minutes: float
	faults: list[Fault] = field(default_factory=list)

	@property
	def traffic_seconds(self) -> float:
		"""How long traffic flows: the whole soak but the drain at its end."""
		return self.minutes * 60

	def counts(self) -> dict[str, int]:
		found = dict.fromkeys(KINDS, 0)
		for f in self.faults:
			found[f.kind] += 1
		return found

	def outages(self) -> list[Fault]:
		return [f for f in self.faults if f.kind in OUTAGES]


def draw(seed: int, minutes: float, per_kind: int | None = None) -> Schedule:
	"""The schedule of a soak of ``minutes`` with ``seed``: every outage kind ``per_kind`` times (by
	default as many as fit, at least once each), in a seeded order, each in a slot of its own; and
	config saves of each kind three times as often, at random moments between ``WARM_UP_SECONDS`` and
	the cool-down.

	Raises ``ValueError`` when ``minutes`` is too short for one of each kind."""
	rng = random.Random(seed)
	usable = minutes * 60 - WARM_UP_SECONDS - COOL_DOWN_SECONDS
	longest = max(high for _, high in DURATIONS.values()) + RECOVERY_SECONDS
	fits = int(usable // (len(OUTAGES) * longest))
	if fits < 1:
		raise ValueError(
			f"a soak of {minutes} minutes is too short: one of each of the {len(OUTAGES)} outage kinds needs "
			f"{(len(OUTAGES) * longest + WARM_UP_SECONDS + COOL_DOWN_SECONDS) / 60:.1f} minutes"
		)
	rounds = per_kind if per_kind is not None else fits
	if rounds > fits:
		raise ValueError(f"{rounds} of each outage kind do not fit in {minutes} minutes (at most {fits})")
	order = [kind for _ in range(rounds) for kind in OUTAGES]
	rng.shuffle(order)
	slot = usable / len(order)
	faults: list[Fault] = []
	for i, kind in enumerate(order):
		low, high = DURATIONS[kind]
		seconds = round(rng.uniform(low, high), 1)
		start = WARM_UP_SECONDS + i * slot
		latest = start + slot - seconds - RECOVERY_SECONDS
		at = round(rng.uniform(start, max(start, latest)), 1)
		faults.append(Fault(at, kind, seconds, rng.choice("ab"), rng.randrange(1 << 30)))
	saves = [kind for _ in range(3 * rounds) for kind in CONFIG_SAVES]
	rng.shuffle(saves)
	for kind in saves:
		at = round(rng.uniform(WARM_UP_SECONDS, WARM_UP_SECONDS + usable), 1)
		faults.append(Fault(at, kind, 0.0, rng.choice("ab"), rng.randrange(1 << 30)))
	faults.sort(key=lambda f: (f.at, f.kind))
	return Schedule(seed, minutes, faults)
