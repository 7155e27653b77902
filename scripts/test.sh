#!/usr/bin/env bash
# Install everything the tests need into .venv, run the linters, then the test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k watch -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check .
echo "== ruff format"; ruff format --check .
echo "== mypy"; mypy
echo "== import-linter"; lint-imports
echo "== pytest"
set +e
pytest "$@"
rc=$?
set -e
# pytest's exit 5 means no test ran: that is a failure for us, never a pass.
exit $rc
