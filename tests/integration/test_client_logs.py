"""librdkafka's own log lines (the README block's ``"debug": "topic"``) go to a Python logger, not stderr."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
	"""
	import logging, sys
	from confluent_kafka import Consumer, Producer
	from spine.config.kafka import split_kafka_conf

	lines = []
	class Keep(logging.Handler):
		def emit(self, record):
			lines.append(record.getMessage())
	log = logging.getLogger("spine.librdkafka")
	log.addHandler(Keep())
	log.setLevel(logging.DEBUG)
	log.propagate = False
	with_logger = sys.argv[2] == "logger"
	s = split_kafka_conf(
		{"bootstrap.servers": sys.argv[1], "client.id": "logs.local", "debug": "topic"},
		default_group_id="g-logs", logger=log if with_logger else None,
	)
	p = Producer(s.producer)
	p.produce("spine-log-test", b"x")
	p.flush(10)
	c = Consumer(s.consumer)
	c.list_topics(timeout=10)
	c.poll(0.5)
	c.close()
	print(len(lines))
	"""
)


def run(bootstrap: str, mode: str) -> subprocess.CompletedProcess:
	return subprocess.run(
		[sys.executable, "-c", SCRIPT, bootstrap, mode], cwd=ROOT, capture_output=True, text=True, timeout=60
	)


def test_debug_lines_reach_the_logger_and_not_stderr(kafka_bootstrap):
	plain = run(kafka_bootstrap, "none")
	assert plain.returncode == 0, plain.stderr[-1000:]
	assert "%7|" in plain.stderr, "without a logger librdkafka writes its debug lines to stderr"

	routed = run(kafka_bootstrap, "logger")
	assert routed.returncode == 0, routed.stderr[-1000:]
	assert "%7|" not in routed.stderr and "|FAIL|" not in routed.stderr
	assert int(routed.stdout.strip()) > 0, "the debug lines arrived at the logger"
