#!/usr/bin/env bash
# Sets up the Python side (flower/: the Flower ServerApp, flwr pinned) in <repo>/.venv, with pytest.
# Idempotent: returns at once when .venv already matches flower/pyproject.toml.
# Without Python ≥ 3.11 it says what to install and exits 0: everything but the Flower server works without it.
# --strict (CI): a failed install is an error instead of a warning.
set -euo pipefail
cd "$(dirname "$0")/.."
strict=false
[ "${1:-}" = "--strict" ] && strict=true

venv=.venv
stamp="$venv/.pfedprompt-setup"
want="$(cksum < flower/pyproject.toml)"

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] \
  && "$venv/bin/python" -c 'import flwr, pytest, pfedprompt_server' 2>/dev/null; then
  exit 0
fi

python=""
for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11 python; do
  if command -v "$candidate" >/dev/null 2>&1 \
    && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python="$candidate"
    break
  fi
done

give_up() {
  echo "pfedprompt: $1" >&2
  echo "pfedprompt: the Flower server (flower/) is not set up; the rest of pfedprompt works without it." >&2
  if $strict; then exit 1; fi
  exit 0
}

if [ -z "$python" ] && [ ! -x "$venv/bin/python" ]; then
  give_up "the Flower server needs Python ≥ 3.11 with venv (Debian/Ubuntu: apt-get install python3 python3-venv; macOS: brew install python), then run: npm run setup:python"
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv" || give_up "could not create $venv (Debian/Ubuntu: apt-get install python3-venv), then run: npm run setup:python"
fi
echo "pfedprompt: installing the Flower server (flower/, flwr 1.42.0) into $venv"
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -e "./flower[test]" \
  || give_up "pip could not install ./flower into $venv (is PyPI reachable?); run npm run setup:python again"
echo "$want" > "$stamp"
