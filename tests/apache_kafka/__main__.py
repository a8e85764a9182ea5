"""Start Apache Kafka for Spine's tests, benchmarks or a development bench.

python -m tests.apache_kafka fetch                 # fetch the jars once; print where and which version
python -m tests.apache_kafka start [--port 9092] [--nodes 3] [--data-dir DIR]
                                                   # run until Ctrl-C / SIGTERM, then stop cleanly
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from tests.apache_kafka.broker import KafkaStartError, KraftCluster, ensure_jars, kafka_version


def main(argv: list[str] | None = None) -> int:
	parser = argparse.ArgumentParser(prog="python -m tests.apache_kafka", description=__doc__.split("\n")[1])
	sub = parser.add_subparsers(dest="command", required=True)
	sub.add_parser("fetch", help="fetch the broker's jars from Maven Central (once) and say where they are")
	start = sub.add_parser("start", help="run a KRaft broker (or cluster) until stopped")
	start.add_argument("--port", type=int, default=0, help="client port of node 1 (default: a free one)")
	start.add_argument("--nodes", type=int, default=1, help="1, or 3 for a cluster (default 1)")
	start.add_argument("--data-dir", help="keep the data here across runs (default: a temporary folder)")
	args = parser.parse_args(argv)
	try:
		if args.command == "fetch":
			print(f"Apache Kafka {kafka_version()}: {ensure_jars()}")
			return 0
		cluster = KraftCluster(args.nodes, port=args.port or None, data_dir=args.data_dir).start()
	except KafkaStartError as e:
		print(f"Error: {e}", file=sys.stderr)
		return 1
	stop = threading.Event()
	for sig in (signal.SIGINT, signal.SIGTERM):
		signal.signal(sig, lambda *_: stop.set())
	print(f"{cluster.describe()}; logs in {cluster.data_dir}", flush=True)
	print(f'site_config.json: "kafka": {{"bootstrap.servers": "{cluster.bootstrap_servers}"}}', flush=True)
	stop.wait()
	cluster.stop()
	return 0


if __name__ == "__main__":
	sys.exit(main())
