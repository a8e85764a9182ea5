"""Operator commands: the local development broker."""

from __future__ import annotations

import re
import signal

from tests.bench.helpers import BenchProcess, produce, read_topic, unique, wait_for


def test_spine_broker_runs_a_usable_broker_and_prints_the_site_config(frappe_site):
	proc = BenchProcess("spine-broker", "--port", "0")
	try:
		m = wait_for(
			lambda: re.search(r"listening on (127\.0\.0\.1:\d+)", proc.output()),
			60,
			what=lambda: f"the broker to start\n{proc.output()}",
		)
		address = m.group(1)
		assert f'set-config -p kafka \'{{"bootstrap.servers": "{address}"' in proc.output()
		topic = unique("devbroker")
		produce(address, topic, [("k", b'{"hello": 1}', None)])
		assert [msg.value() for msg in read_topic(address, topic, 1, exact_wait=0.5)] == [b'{"hello": 1}']
	finally:
		proc.signal(signal.SIGTERM)
		code = proc.proc.wait(30)
	assert code == 0, proc.output()[-1000:]
