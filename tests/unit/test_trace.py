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


def test_without_opentelemetry_spans_import_nothing_and_yield_none():
	import subprocess
	import sys

	code = """
import sys
class Block:
	def find_spec(self, name, path=None, target=None):
		if name.split(".")[0] == "opentelemetry":
			raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Block())
from spine import spans
with spans.span("x", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") as own:
	pass
spans.record("y", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0)
print(spans.available(), own, any(m.startswith("opentelemetry") for m in sys.modules))
"""
	out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
	assert out.returncode == 0, out.stderr
	assert out.stdout.split() == ["False", "None", "False"]
