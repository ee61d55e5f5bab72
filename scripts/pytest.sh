#!/usr/bin/env bash
# Run the test suite. pytest's exit 5 ("no tests collected") is a failure here: a suite
# that ran nothing proves nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
"$BIN/python" -m pytest -ra "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
