"""W3C traceparent handling."""

from __future__ import annotations

from spine import trace

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_child_continues_the_parents_trace_with_a_new_span():
	child = trace.child(PARENT)
	assert trace.parse(child)[0] == "4bf92f3577b34da6a3ce929d0e0e4736"
	assert trace.parse(child)[1] != "00f067aa0ba902b7"
	assert trace.parse(child)[2] == "01"
	assert trace.child(PARENT) != child, "every span id is new"


def test_without_a_valid_parent_a_new_sampled_trace_starts():
	for parent in (None, "", "garbage", "ff-" + PARENT[3:], "00-" + "0" * 32 + "-00f067aa0ba902b7-01", 42):
		child = trace.parse(trace.child(parent))
		assert child and child[2] == "01", parent
		assert child[0] != "4bf92f3577b34da6a3ce929d0e0e4736"


def test_trace_id_of_invalid_values_is_none():
	assert trace.trace_id(PARENT.upper()) == "4bf92f3577b34da6a3ce929d0e0e4736"
	assert trace.trace_id("00-abc-def-01") is None
