#!/usr/bin/env bash
# All set-up on a fresh Debian/Ubuntu machine: system packages (where we can), a virtualenv, the
# project and its test tools. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# mysqlclient builds against libmysqlclient (pkg-config finds it); the browser tests use Debian's chromium
# (Playwright drives it through executable_path: never `playwright install`, no browser is downloaded);
# the fidelity benchmark compares with wrk.
APT_PACKAGES="default-libmysqlclient-dev pkg-config build-essential chromium wrk"
missing=""
for pkg in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing system packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "setup: installing system packages with sudo:$missing"
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "setup: cannot install system packages ($missing) here." >&2
    echo "setup: install them yourself (Debian/Ubuntu: apt-get install$missing;" >&2
    echo "setup: macOS: brew install mysql-client pkg-config) for MySQL support and the browser tests." >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.poolbench-installed"
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r requirements.txt
  touch "$stamp"
fi
