#!/usr/bin/env bash
# The README's first command: install lbc with its sandbox into .venv, then run the narrated demo — the
# tutorial's Ingress becomes an ALB with three pods behind readiness gates, on this machine, with no cluster
# and no AWS account. Extra arguments go to `lbc sandbox` (e.g. --keep to keep it running afterwards; see
# `lbc sandbox --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh sandbox
exec .venv/bin/lbc sandbox --demo "$@"
