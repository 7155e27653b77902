#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv in .venv with the given extras.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh sandbox   or   scripts/setup.sh dev
# Re-running is cheap: pip is only called again when pyproject.toml or the extras changed.
# System packages: none are needed yet (kubectl is used by some tests when present; they skip without it).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-sandbox}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.lbc-installed-$extras"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
  echo "$want" > "$stamp"
fi
