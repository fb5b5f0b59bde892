#!/usr/bin/env bash
# Sets up the environment (idempotent) and runs the default test suite.
# Slow tests are excluded by default; run them with: scripts/test.sh -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pytest -q "$@"
