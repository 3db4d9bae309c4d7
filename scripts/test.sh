#!/usr/bin/env bash
# The whole test suite in every environment of tox.ini (Python 3.11 + Django 5.2, Python 3.12 + Django 6.1).
# tox finds python3.12 on PATH: where pyenv installed it (as on these machines), its bin folder is added.
# Arguments go to tox: `scripts/test.sh -e py311-dj52 -- tests/sweep/test_plan.py`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for bin in "$root"/versions/3.1[23].*/bin; do
    [ -x "$bin/python3" ] && PATH="$PATH:$bin"
  done
  export PATH
fi
exec "$VENV/bin/tox" "$@"
