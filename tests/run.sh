#!/usr/bin/env bash
# Run Spine's test suite. Usage: tests/run.sh [pytest args]
#   SPINE_BENCH=/path/to/frappe-bench SPINE_SITE=site.local tests/run.sh   # include Frappe-side tests
#   SPINE_PYTHON=/path/to/python tests/run.sh                              # without a bench
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${SPINE_BENCH:-}" ]]; then
	PY="$SPINE_BENCH/env/bin/python"
	tests/install_tools.sh "$PY"
else
	PY="${SPINE_PYTHON:-python3}"
fi
"$PY" -m pytest tests "$@"
