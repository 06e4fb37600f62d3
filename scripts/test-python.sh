#!/usr/bin/env bash
# The Python tests (flower/tests), when the Python side is set up (npm run setup:python).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import pytest, flwr' 2>/dev/null; then
  echo "flower/tests skipped: no .venv with flwr and pytest (npm run setup:python sets it up)"
  exit 0
fi
cd flower && exec ../.venv/bin/python -m pytest tests -q -p no:cacheprovider
