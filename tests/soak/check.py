"""The soak's end check: what the databases and the broker hold, against what the driver did.

``gather`` reads the facts (both sites' Message Log, the handlers' Comments, the synced documents,
every soak topic read from the broker); ``evaluate`` is plain Python over those facts and the
journal, so its rules are unit-tested with made-up facts. A problem is put down to the fault whose
window (its start to ``RECOVERY`` seconds after its end) holds the moment it concerns.

Guarantees checked, per site and direction:

- every event of a committed transaction is captured once per route its snapshot's Spine Producer
  Config had (``lost`` / ``duplicated``), none of a rolled-back one (``phantom``);
- every captured event is Published and on its topic in the broker (``lost``), at least once;
- every published message is stored on the site that follows its topic and handled there, its
  handler's Comment written once (``lost`` / ``duplicated``); a synced document ends as its source;
- per document, messages are handled in capture order (``out of order``);
- nothing waits at the end (``stuck``); every config save is in force for what follows it (probes:
  ``config``); every request gets its own reply or times out only during a fault (``request``).
"""

from __future__ import annotations

import datetime
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.soak.journal import FaultRun, Journal
from tests.soak.schedule import OUTAGES

RECOVERY = datetime.timedelta(seconds=20)
SAVE_WINDOW = datetime.timedelta(seconds=5)
PROBLEMS = ("lost", "duplicated", "phantom", "out of order", "stuck", "diverged", "config", "request")
FINAL_INBOUND = ("Processed", "Skipped", "Failed", "Invalid")


@dataclass
class Facts:
	"""What the databases and the broker hold at the end, per site tag ("a", "b")."""

	outbound: dict[str, list[dict]] = field(default_factory=dict)  # soak documents' Outbound rows
	inbound: dict[str, list[dict]] = field(default_factory=dict)  # Inbound rows of the soak topics
	effects: dict[str, dict[str, list[datetime.datetime]]] = field(
		default_factory=dict
	)  # id -> Comment times
	kafka: dict[str, Counter] = field(default_factory=dict)  # topic -> message id -> copies
	documents: dict[str, dict[tuple[str, str], Any]] = field(
		default_factory=dict
	)  # synced documents made on tag
	copies: dict[str, dict[tuple[str, str], Any]] = field(default_factory=dict)  # the same, on the other site
	handler_topics: dict[str, set[str]] = field(default_factory=dict)  # topics tag handles with the handler
	sync_topics: dict[str, set[str]] = field(default_factory=dict)  # topics tag applies with sync rules
	probes: list[dict] = field(default_factory=list)  # {tag, topic, message_id, name, doctype, expect}


@dataclass
class Problem:
	kind: str
	at: datetime.datetime | None
	detail: str


@dataclass
class Outcome:
	problems: list[Problem]
	pauses: dict[int, float]  # fault run index -> longest pause in handling while it lasted (s)
	counts: dict[str, int]
	sent_twice: int

	def by_fault(self, faults: list[FaultRun]) -> dict[int | None, list[Problem]]:
		found: dict[int | None, list[Problem]] = defaultdict(list)
		for p in self.problems:
			found[fault_at(faults, p.at)].append(p)
		return found


def fault_at(faults: list[FaultRun], at: datetime.datetime | None) -> int | None:
	"""The index of the latest fault whose window holds ``at`` (None: no fault was on)."""
	if at is None:
		return None
	found = None
	for i, f in enumerate(faults):
		if f.started - datetime.timedelta(seconds=2) <= at <= f.ended + RECOVERY:
			found = i
	return found


def longest_pause(stamps: list[datetime.datetime], start: datetime.datetime, end: datetime.datetime) -> float:
	"""The longest wait for the next handled message that began within [start, end]: for each two
	consecutive ``stamps`` (sorted) with the second after ``start`` and the first before ``end``, the
	time from the later of the first and ``start`` to the second."""
	longest = 0.0
	for previous, stamp in itertools.pairwise(stamps):
		if stamp >= start and previous <= end:
			longest = max(longest, (stamp - max(previous, start)).total_seconds())
		elif previous > end:
			break
	return longest


def expected_events(journal: Journal, tag: str) -> tuple[Counter, dict, set]:
	"""(Counter of (DocType, name, event, topic) the site's committed transactions must have captured,
	{(DocType, name, event): when}, documents of transactions whose commit's outcome is unknown)."""
	routes = journal.routes_at(tag)
	expected: Counter = Counter()
	when: dict[tuple[str, str, str], datetime.datetime] = {}
	unknown: set[tuple[str, str]] = set()
	for txn in journal.txns:
		if txn.site == tag and txn.committed is None:
			unknown.update((dt, name) for _, dt, name in txn.ops)
	for txn in journal.txns:
		if txn.site != tag or txn.committed is None:
			continue
		for doctype, name, event in txn.events():
			if (doctype, name) in unknown:
				continue
			when.setdefault((doctype, name, event), txn.at)
			if not txn.committed:
				continue
			for topic, events in routes.get(txn.version, {}).get(doctype, []):
				if event in events:
					expected[(doctype, name, event, topic)] += 1
	return expected, when, unknown


def evaluate(journal: Journal, facts: Facts) -> Outcome:
	problems: list[Problem] = []
	counts: Counter = Counter()
	sent_twice = 0
	for tag in ("a", "b"):
		other = "b" if tag == "a" else "a"
		versions = journal.routes_at(tag)
		for txn in journal.txns:
			if txn.site == tag and txn.committed and txn.version not in versions:
				problems.append(
					Problem(
						"lost",
						txn.at,
						f"{tag}: a transaction saw config version {txn.version}, which no save made",
					)
				)
		expected, when, unknown = expected_events(journal, tag)
		rows = [
			r for r in facts.outbound.get(tag, []) if (r["document_type"], r["document_name"]) not in unknown
		]
		actual = Counter((r["document_type"], r["document_name"], r["event"], r["topic"]) for r in rows)
		counts[f"{tag} events expected"] = sum(expected.values())
		for key in expected - actual:
			problems.append(
				Problem(
					"lost",
					when.get(key[:3]),
					f"{tag}: {key[0]} {key[1]} {key[2]} -> {key[3]} captured {actual[key]} of {expected[key]} times",
				)
			)
		for key in actual - expected:
			kind = "duplicated" if expected[key] else "phantom"
			problems.append(
				Problem(
					kind,
					when.get(key[:3]),
					f"{tag}: {key[0]} {key[1]} {key[2]} -> {key[3]} captured {actual[key]} times, {expected[key]} expected",
				)
			)
		for r in rows:
			copies = facts.kafka.get(r["topic"], Counter())[r["message_id"]]
			if r["status"] != "Published":
				problems.append(
					Problem(
						"stuck",
						r["creation"],
						f"{tag}: outbound {r['message_id']} ({r['document_type']} {r['document_name']}) is {r['status']}: {r.get('last_error')}",
					)
				)
			elif not copies:
				problems.append(
					Problem(
						"lost", r["creation"], f"{tag}: {r['message_id']} Published but not on {r['topic']}"
					)
				)
			sent_twice += copies > 1
		counts[f"{tag} published"] = sum(1 for r in rows if r["status"] == "Published")
		_consumption(tag, other, facts, rows, problems, counts)
	_documents(journal, facts, problems)
	_probes(facts, problems)
	_requests(journal, problems)
	pauses = _pauses(journal, facts)
	return Outcome(problems, pauses, dict(counts), sent_twice)


def _consumption(
	tag: str, other: str, facts: Facts, rows: list[dict], problems: list[Problem], counts: Counter
) -> None:
	"""``other`` stores and handles what ``tag`` published on the topics it follows, once, in order."""
	inbound = {r["message_id"]: r for r in facts.inbound.get(other, [])}
	effects = facts.effects.get(other, {})
	handled_topics, synced_topics = (
		facts.handler_topics.get(other, set()),
		facts.sync_topics.get(other, set()),
	)
	by_key: dict[tuple[str, str], list[dict]] = defaultdict(list)
	for r in sorted(rows, key=lambda r: r["name"]):
		if r["status"] != "Published" or r["topic"] not in handled_topics | synced_topics:
			continue
		got = inbound.get(r["message_id"])
		if got is None:
			problems.append(
				Problem(
					"lost",
					r["creation"],
					f"{other}: never stored {r['message_id']} of {tag} ({r['topic']}, {r['kafka_key']})",
				)
			)
			continue
		if got["status"] not in FINAL_INBOUND:
			problems.append(
				Problem(
					"stuck",
					r["creation"],
					f"{other}: {r['message_id']} is still {got['status']}: {got.get('last_error')}",
				)
			)
			continue
		if r["topic"] in handled_topics:
			n = len(effects.get(r["message_id"], []))
			if got["status"] != "Processed" or n == 0:
				problems.append(
					Problem(
						"lost",
						r["creation"],
						f"{other}: {r['message_id']} is {got['status']} with {n} effects: {got.get('last_error')}",
					)
				)
				continue
			if n > 1:
				problems.append(
					Problem(
						"duplicated",
						r["creation"],
						f"{other}: {r['message_id']}'s handler effect committed {n} times",
					)
				)
		elif got["status"] not in ("Processed", "Skipped"):
			problems.append(
				Problem(
					"lost",
					r["creation"],
					f"{other}: synced {r['message_id']} ended {got['status']}: {got.get('last_error')}",
				)
			)
			continue
		counts[f"{other} handled"] += 1
		by_key[(r["topic"], r["kafka_key"])].append(r)
	for (topic, key), captured in by_key.items():
		if topic in handled_topics:
			done = sorted(captured, key=lambda r: min(effects[r["message_id"]]))
		else:
			done = sorted(captured, key=lambda r: (inbound[r["message_id"]]["done_at"], r["name"]))
		if [r["message_id"] for r in done] != [r["message_id"] for r in captured]:
			first = next(c for c, d in zip(captured, done, strict=True) if c["message_id"] != d["message_id"])
			problems.append(
				Problem(
					"out of order", first["creation"], f"{other}: {topic} {key} handled out of capture order"
				)
			)


def _documents(journal: Journal, facts: Facts, problems: list[Problem]) -> None:
	"""A synced document ends on the other site as it ended where it was made (or is gone from both)."""
	for tag in ("a", "b"):
		other = "b" if tag == "a" else "a"
		source, copy = facts.documents.get(tag, {}), facts.copies.get(tag, {})
		for key, state in source.items():
			if copy.get(key) != state:
				problems.append(
					Problem(
						"diverged",
						None,
						f"{other}: {key[0]} {key[1]} is {copy.get(key)!r}, on {tag} {state!r}",
					)
				)


def _probes(facts: Facts, problems: list[Problem]) -> None:
	for probe in facts.probes:
		if probe["handled"] != probe["expect"]:
			verb = (
				"was not handled after its topic was configured"
				if probe["expect"]
				else "was handled after its topic was removed"
			)
			problems.append(
				Problem(
					"config",
					probe["at"],
					f"{probe['tag']}: probe {probe['message_id']} on {probe['topic']} {verb}",
				)
			)


def _requests(journal: Journal, problems: list[Problem]) -> None:
	for r in journal.requests:
		if r.outcome == "reply":
			continue
		ended = r.at + datetime.timedelta(seconds=r.seconds)
		# unanswered, or refused to the caller with a clear error because it could not be published
		unanswered = r.outcome == "timeout" or "could not be published" in r.outcome
		if unanswered and any(
			f.started - datetime.timedelta(seconds=2) <= ended and r.at <= f.ended + RECOVERY
			for f in journal.faults
		):
			continue  # a request may go unanswered while a fault lasts; it must not be answered wrongly
		problems.append(
			Problem("request", r.at, f"{r.site}: request {r.request_id}: {r.outcome} after {r.seconds:.1f}s")
		)


def _pauses(journal: Journal, facts: Facts) -> dict[int, float]:
	stamps = sorted(
		r["done_at"] for tag in ("a", "b") for r in facts.inbound.get(tag, []) if r.get("done_at") is not None
	)
	# an outage's pause lasts until the flow is back; a config save stops nothing: what it could hold up
	# is what comes within a few seconds of it (outages overlapping it are counted there)
	return {
		i: longest_pause(stamps, f.started, f.ended + (RECOVERY if f.kind in OUTAGES else SAVE_WINDOW))
		for i, f in enumerate(journal.faults)
	}
