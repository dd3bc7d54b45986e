#!/usr/bin/env bash
# Set up lsnn: find CPython 3.10 (lava-nc 0.10 / lava-dl 0.6 need it), make .venv in the
# checkout, install lsnn editable with its pinned dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

find_py310() {
  local c
  for c in "${LSNN_PYTHON:-}" python3.10 "$(command -v pyenv >/dev/null 2>&1 && PYENV_VERSION=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.|$)' | tail -n1) pyenv which python3.10 2>/dev/null)"; do
    [ -n "$c" ] || continue
    if "$c" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' >/dev/null 2>&1; then
      command -v "$c" 2>/dev/null || echo "$c"; return 0
    fi
  done
  for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
    [ -x "$c" ] && { echo "$c"; return 0; }
  done
  return 1
}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)'; then
  if ! PY=$(find_py310); then
    cat >&2 <<'MSG'
lsnn setup: no CPython 3.10 found.
lava-nc 0.10 and lava-dl 0.6 import only on Python 3.10. Install one and run this again, e.g.
  pyenv install 3.10.13          (then this script finds it under pyenv)
  apt-get install python3.10-venv (where your distribution ships it)
or point LSNN_PYTHON at a python3.10 executable.
MSG
    exit 1
  fi
  echo "lsnn setup: using $PY ($("$PY" --version 2>&1))"
  rm -rf .venv
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade "pip>=23" "setuptools>=64" wheel
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/lsnn --version
echo "lsnn setup: done. Activate with: source .venv/bin/activate"
