"""Spine's metrics module against the real prometheus_client in multi-process mode (no Frappe): what
forked children record is served, added up, by the parent's /metrics."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
	"""
	import multiprocessing, sys, urllib.request
	from spine import metrics

	metrics.inc("spine_messages_published_total", 5, site="a", topic="t")  # off: nothing counts
	port = int(sys.argv[1])
	folder = metrics.serve(port, host="127.0.0.1")

	def child(n):
		for _ in range(n):
			metrics.inc("spine_messages_handled_total", site="a", topic="t", status="Processed")
		metrics.observe("spine_handler_seconds", 0.02, site="a", topic="t")
		metrics.set_gauge("spine_process_up", 1, site="a", process="jsonworker")

	ctx = multiprocessing.get_context("fork")
	procs = [ctx.Process(target=child, args=(n,)) for n in (3, 4)]
	for p in procs:
		p.start()
	for p in procs:
		p.join()
	alive_before = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
	for p in procs:
		metrics.process_exited(p.pid)
	after = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
	print(alive_before)
	print("=====")
	print(after)
	"""
)


def free_port() -> int:
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


def sample(text: str, line_start: str) -> float | None:
	for line in text.splitlines():
		if line.startswith(line_start):
			return float(line.rsplit(" ", 1)[1])
	return None


def test_children_counts_are_added_up_by_the_parents_server(tmp_path):
	port = free_port()
	env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
	out = subprocess.run(
		[sys.executable, "-c", SCRIPT, str(port)], capture_output=True, text=True, timeout=60, env=env
	)
	assert out.returncode == 0, out.stderr
	before, after = out.stdout.split("=====")
	handled = 'spine_messages_handled_total{site="a",status="Processed",topic="t"}'
	assert sample(before, handled) == 7.0, "3 + 4 from two children"
	assert sample(before, 'spine_handler_seconds_count{site="a",topic="t"}') == 2.0
	assert sample(before, 'spine_handler_seconds_bucket{le="0.025",site="a",topic="t"}') == 2.0
	assert sample(before, "spine_messages_published_total") is None, "nothing counted before serve()"
	assert sample(after, handled) == 7.0, "counters of exited processes stay"
	assert sample(after, 'spine_process_up{process="jsonworker",site="a"}') in (None, 0.0)


def test_recording_while_off_never_imports_prometheus_client():
	code = (
		"import sys; from spine import metrics; metrics.inc('spine_messages_published_total', site='a', topic='t');"
		"metrics.observe('spine_handler_seconds', 1, site='a', topic='t'); print('prometheus_client' in sys.modules)"
	)
	out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
	assert out.returncode == 0, out.stderr
	assert out.stdout.strip() == "False"
