#!/usr/bin/env bash
# Install requirements-test.txt into the Python given as $1 without changing any package it
# already has: a bench's Frappe pins its own dependencies (v14 needs urllib3 1.26, which the
# newest selenium would replace), so every installed package is passed as a constraint.
set -euo pipefail
PY="$1"
cd "$(dirname "$0")/.."
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
"$PY" -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^-e ' > "$constraints" || true
"$PY" -m pip install -q --disable-pip-version-check -r requirements-test.txt -c "$constraints"
