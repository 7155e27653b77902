#!/usr/bin/env bash
# Install lbc with its sandbox into .venv and run the main job.
# Extra arguments go to the command (see `lbc apiserver --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh sandbox
exec .venv/bin/lbc apiserver --kubeconfig-out "${KUBECONFIG_OUT:-$PWD/lbc-sandbox.kubeconfig}" "$@"
