"""The soak's end check (tests/soak/check.py) on made-up facts: each broken guarantee is seen, and a
run where everything held passes."""

from __future__ import annotations

import datetime
from collections import Counter

from tests.soak import check, report
from tests.soak.journal import ConfigSave, FaultRun, Journal, RequestRun, Txn

T0 = datetime.datetime(2026, 12, 7, 10, 0, 0)
TODO_A, TODO_B = "t-todo-a", "t-todo-b"


def at(seconds: float) -> datetime.datetime:
	return T0 + datetime.timedelta(seconds=seconds)


def base() -> tuple[Journal, check.Facts]:
	"""Site a saves ToDo X (insert) and commits; b handles both events once, in order."""
	journal = Journal()
	for tag, topic in (("a", TODO_A), ("b", TODO_B)):
		journal.add(
			ConfigSave(
				tag, "Spine Producer Config", at(0), "v1", {"ToDo": [[topic, ["after_insert", "on_update"]]]}
			)
		)
	journal.add(Txn("a", [("insert", "ToDo", "X")], "v1", True, at(10)))
	journal.add(Txn("a", [("insert", "ToDo", "Y")], "v1", False, at(11)))  # rolled back
	out = [
		{"name": 1, "message_id": "m1", "document_type": "ToDo", "document_name": "X", "event": "on_update",
			"topic": TODO_A, "kafka_key": "ToDo:X", "status": "Published", "creation": at(10)},
		{"name": 2, "message_id": "m2", "document_type": "ToDo", "document_name": "X", "event": "after_insert",
			"topic": TODO_A, "kafka_key": "ToDo:X", "status": "Published", "creation": at(10)},
	]  # fmt: skip
	facts = check.Facts(
		outbound={"a": out, "b": []},
		inbound={
			"b": [
				{
					"message_id": "m1",
					"topic": TODO_A,
					"kafka_key": "ToDo:X",
					"status": "Processed",
					"done_at": at(10.1),
				},
				{
					"message_id": "m2",
					"topic": TODO_A,
					"kafka_key": "ToDo:X",
					"status": "Processed",
					"done_at": at(10.1),
				},
			],
			"a": [],
		},  # fmt: skip
		effects={"b": {"m1": [at(10.05)], "m2": [at(10.06)]}, "a": {}},
		kafka={TODO_A: Counter({"m1": 1, "m2": 1})},
		handler_topics={"b": {TODO_A}, "a": {TODO_B}},
		sync_topics={"a": set(), "b": set()},
	)
	return journal, facts


def kinds(journal: Journal, facts: check.Facts) -> list[str]:
	return sorted(p.kind for p in check.evaluate(journal, facts).problems)


def test_a_run_where_everything_held_has_no_problem():
	journal, facts = base()
	outcome = check.evaluate(journal, facts)
	assert outcome.problems == []
	assert outcome.counts["b handled"] == 2
	assert report.passed(report.summarise(journal, outcome), min_per_kind=0)


def test_an_event_not_captured_is_lost_and_one_of_a_rolled_back_transaction_is_a_phantom():
	journal, facts = base()
	facts.outbound["a"].pop()
	assert kinds(journal, facts) == ["lost"]
	journal, facts = base()
	facts.outbound["a"].append(
		{**facts.outbound["a"][0], "name": 3, "message_id": "m3", "document_name": "Y"}
	)
	facts.kafka[TODO_A]["m3"] = 1
	facts.inbound["b"].append({**facts.inbound["b"][0], "message_id": "m3", "kafka_key": "ToDo:Y"})
	facts.effects["b"]["m3"] = [at(12)]
	assert kinds(journal, facts) == ["phantom"]


def test_an_event_captured_for_a_route_of_an_older_config_is_lost_and_misrouted():
	journal, facts = base()
	journal.add(
		ConfigSave(
			"a",
			"Spine Producer Config",
			at(5),
			"v2",
			{"ToDo": [["new-topic", ["after_insert", "on_update"]]]},
		)
	)
	journal.txns[0].version = "v2"  # its snapshot held v2, yet the capture used v1's routes
	assert kinds(journal, facts) == ["lost", "lost", "phantom", "phantom"]


def test_a_message_not_on_the_broker_not_stored_or_handled_twice_is_seen():
	journal, facts = base()
	facts.kafka[TODO_A]["m1"] = 0
	assert kinds(journal, facts) == ["lost"]
	journal, facts = base()
	facts.inbound["b"].pop(0)
	assert kinds(journal, facts) == ["lost"]
	journal, facts = base()
	facts.effects["b"]["m1"].append(at(20))
	assert kinds(journal, facts) == ["duplicated"]


def test_pending_rows_at_the_end_are_stuck():
	journal, facts = base()
	facts.outbound["a"][0]["status"] = "Pending"
	assert kinds(journal, facts) == ["stuck"]
	journal, facts = base()
	facts.inbound["b"][1]["status"] = "Error"
	assert kinds(journal, facts) == ["stuck"]


def test_messages_of_one_document_handled_out_of_capture_order_are_seen():
	journal, facts = base()
	facts.effects["b"] = {"m1": [at(10.06)], "m2": [at(10.05)]}
	assert kinds(journal, facts) == ["out of order"]


def test_a_probe_handled_against_its_config_and_a_wrong_reply_are_seen():
	journal, facts = base()
	facts.probes = [
		{"tag": "b", "topic": "decoy", "message_id": "p1", "expect": False, "handled": True, "at": at(30)}
	]
	assert kinds(journal, facts) == ["config"]
	journal, facts = base()
	journal.add(RequestRun("a", "r1", at(40), "wrong reply", 0.1))
	assert kinds(journal, facts) == ["request"]


def test_a_request_may_time_out_during_a_fault_but_not_outside_one():
	journal, facts = base()
	journal.add(FaultRun("kill_broker", "a", at(50), at(60)))
	journal.add(RequestRun("a", "r1", at(55), "timeout", 10))
	assert kinds(journal, facts) == []
	journal.add(RequestRun("a", "r2", at(300), "timeout", 10))
	assert kinds(journal, facts) == ["request"]


def test_a_request_refused_as_unpublishable_is_allowed_only_while_a_fault_lasts():
	unpublished = "error: spine.errors.SpineError: the request could not be published on t: _MSG_TIMED_OUT"
	journal, facts = base()
	journal.add(FaultRun("kill_broker", "a", at(50), at(80)))
	journal.add(RequestRun("a", "r1", at(51), unpublished, 30))
	assert kinds(journal, facts) == []
	journal.add(RequestRun("a", "r2", at(300), unpublished, 30))
	journal.add(RequestRun("a", "r3", at(55), "error: ValueError: the handler failed", 0.1))
	assert kinds(journal, facts) == ["request", "request"], "outside a fault, or another error: a problem"


def test_problems_are_put_down_to_the_fault_whose_window_holds_them():
	faults = [FaultRun("kill_relay", "a", at(100), at(105)), FaultRun("kill_redis", "a", at(200), at(204))]
	assert check.fault_at(faults, at(99)) == 0  # just before: the fault's start is read late
	assert check.fault_at(faults, at(120)) == 0  # within its recovery
	assert check.fault_at(faults, at(150)) is None
	assert check.fault_at(faults, at(210)) == 1


def test_the_longest_pause_is_measured_within_a_faults_window():
	stamps = [at(s) for s in (0, 1, 2, 3, 10, 11, 12, 30)]
	assert check.longest_pause(stamps, at(3.5), at(5)) == 6.5  # nothing from 3.5 s to 10 s
	assert check.longest_pause(stamps, at(10), at(11)) == 1.0
	assert check.longest_pause(stamps, at(12), at(40)) == 18.0


def test_a_synced_document_that_ends_differently_on_the_other_site_diverged():
	journal, facts = base()
	facts.documents = {"a": {("M", "n1"): ("t", 1.0), ("M", "n2"): "gone"}, "b": {}}
	facts.copies = {"a": {("M", "n1"): ("t", 1.0), ("M", "n2"): ("t", 2.0)}, "b": {}}
	assert kinds(journal, facts) == ["diverged"]


def test_a_transaction_whose_commit_outcome_is_unknown_leaves_its_documents_out():
	journal, facts = base()
	journal.add(Txn("a", [("save", "ToDo", "X")], "v1", None, at(12), "commit: OperationalError"))
	assert kinds(journal, facts) == [], "neither lost (expected) nor duplicated (actual) for X"


def test_the_report_of_a_run_with_faults_and_problems_has_a_row_per_kind():
	import json

	journal, facts = base()
	journal.add(Txn("a", [("save", "ToDo", "Z")], "v1", None, at(12), "commit: OperationalError"))
	journal.add(FaultRun("kill_relay", "a", at(9), at(11)))
	facts.outbound["a"].pop()
	summary = report.summarise(journal, check.evaluate(journal, facts))
	json.dumps(summary, default=str)
	assert summary["kinds"]["kill_relay"]["count"] == 1
	assert summary["journal"]["commit outcome unknown"] == 1
	assert not report.passed(summary, min_per_kind=0)
	assert "| kill relay | 1 |" in report.table(summary)
