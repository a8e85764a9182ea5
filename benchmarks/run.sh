#!/usr/bin/env bash
# Run Spine's benchmarks against a test site. Usage:
#   SPINE_BENCH=/path/to/frappe-bench SPINE_SITE=test.local [SPINE_SITE2=second.local] \
#     benchmarks/run.sh [all|producer|consumer|pipeline|trickle|ceilings|metrics|sites|benchwide|signing|cluster|membership|ecosystem|soak|summary] [args]
# Each prints a table and writes benchmarks/results/<name>.json; "all" (the default) runs them all
# ("sites", between two sites, only when SPINE_SITE2 names a second site of the bench; "benchwide"
# creates up to 19 sites spine-bwb-NN.test the first time, ~25 s each, and keeps them) and ends with
# one table of every measure beside its goal (benchmarks/results/summary.json).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SPINE_BENCH:?set SPINE_BENCH to a frappe-bench folder}"
: "${SPINE_SITE:?set SPINE_SITE to a test site in that bench}"
PY="$SPINE_BENCH/env/bin/python"
tests/install_tools.sh "$PY"
which="${1:-all}"
shift || true
export PYTHONPATH="$PWD:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
case "$which" in
	producer) "$PY" benchmarks/producer_bench.py "$@" ;;
	consumer) "$PY" benchmarks/consumer_bench.py "$@" ;;
	pipeline) "$PY" benchmarks/pipeline_bench.py "$@" ;;
	trickle) "$PY" benchmarks/trickle_bench.py "$@" ;;
	ceilings) "$PY" benchmarks/ceilings_bench.py "$@" ;;
	metrics) "$PY" benchmarks/metrics_bench.py "$@" ;;
	sites) "$PY" benchmarks/sites_bench.py "$@" ;;
	benchwide) "$PY" benchmarks/benchwide_bench.py "$@" ;;
	signing) "$PY" benchmarks/signing_bench.py "$@" ;;
	cluster) "$PY" benchmarks/cluster_bench.py "$@" ;;
	membership) "$PY" benchmarks/membership_bench.py "$@" ;;
	ecosystem) "$PY" benchmarks/ecosystem_bench.py "$@" ;;
	soak) "$PY" -m tests.soak "$@" ;;  # not part of "all": its length is chosen (--minutes, default 60)
	summary) "$PY" benchmarks/summary.py ;;
	all)
		# one id for this run's results: the summary reads only these, never an older file
		export SPINE_BENCH_RUN="${SPINE_BENCH_RUN:-run-$(date +%Y%m%d-%H%M%S)}"
		echo "benchmark run $SPINE_BENCH_RUN"
		"$PY" benchmarks/producer_bench.py
		"$PY" benchmarks/consumer_bench.py
		"$PY" benchmarks/pipeline_bench.py
		"$PY" benchmarks/trickle_bench.py
		"$PY" benchmarks/ceilings_bench.py
		"$PY" benchmarks/metrics_bench.py
		if [ -n "${SPINE_SITE2:-}" ]; then
			"$PY" benchmarks/sites_bench.py
		else
			echo "sites benchmark skipped: set SPINE_SITE2 to a second site of the bench to measure sync and request/reply"
		fi
		"$PY" benchmarks/benchwide_bench.py
		"$PY" benchmarks/signing_bench.py
		"$PY" benchmarks/cluster_bench.py
		"$PY" benchmarks/membership_bench.py
		"$PY" benchmarks/ecosystem_bench.py
		"$PY" benchmarks/summary.py
		;;
	*) echo "usage: benchmarks/run.sh [all|producer|consumer|pipeline|trickle|ceilings|metrics|sites|benchwide|signing|cluster|membership|ecosystem|soak|summary] [args]" >&2; exit 2 ;;
esac
