#!/usr/bin/env bash
# Set up lsnn in the checkout. Safe to run again.
#   .venv       the core (search, compile, emulator, reports, CLI): the newest CPython 3.10-3.13
#               found ($LSNN_PYTHON overrides), current torch and numpy (scripts/constraints.txt).
#   .venv-lava  Lava's CPython 3.10 ($LSNN_LAVA_PYTHON overrides) with lava-nc and lava-dl, for
#               the Lava worker; without a 3.10, Lava checks are off and everything else works.
set -euo pipefail
cd "$(dirname "$0")/.."

version_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

find_python() {  # find_python 3.13 3.12 ... : the first interpreter found of these versions
  local v c
  for v in "$@"; do
    for c in "python$v" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v"*/bin/"python$v" "/usr/bin/python$v" "/usr/local/bin/python$v"; do
      if [ "$(version_of "$c")" = "$v" ]; then command -v "$c" 2>/dev/null || echo "$c"; return 0; fi
    done
  done
  return 1
}

make_venv() {  # make_venv DIR PYTHON: (re)create DIR unless it already runs PYTHON's version
  if [ ! -x "$1/bin/python" ] || [ "$(version_of "$1/bin/python")" != "$(version_of "$2")" ]; then
    echo "lsnn setup: $1 with $2 ($("$2" --version 2>&1))"
    rm -rf "$1"
    "$2" -m venv "$1"
  fi
  "$1/bin/python" -m pip install -q --upgrade "pip>=23" "setuptools>=64" wheel
}

if [ -n "${LSNN_PYTHON:-}" ]; then PY="$LSNN_PYTHON"
elif ! PY=$(find_python 3.13 3.12 3.11 3.10); then
  echo "lsnn setup: no CPython 3.10-3.13 found; install one (e.g. pyenv install 3.12) or set LSNN_PYTHON" >&2
  exit 1
fi
case "$(version_of "$PY")" in
  3.10|3.11|3.12|3.13) ;;
  *) echo "lsnn setup: $PY is not CPython 3.10-3.13 (LSNN_PYTHON?)" >&2; exit 1 ;;
esac
make_venv .venv "$PY"
.venv/bin/python -m pip install -q -c scripts/constraints.txt -e ".[test]"
.venv/bin/lsnn --version

if [ -n "${LSNN_LAVA_PYTHON:-}" ]; then LAVA_PY="$LSNN_LAVA_PYTHON"
else LAVA_PY=$(find_python 3.10 || true)
fi
if [ -n "$LAVA_PY" ] && [ "$(version_of "$LAVA_PY")" = "3.10" ]; then
  make_venv .venv-lava "$LAVA_PY"
  .venv-lava/bin/python -m pip install -q -r scripts/requirements-lava.txt
  .venv-lava/bin/python -m pip install -q --no-deps -e .
  .venv-lava/bin/python -c 'import lava.magma.core.process.process, lsnn.runtime.lava.worker' \
    && echo "lsnn setup: Lava worker environment .venv-lava ready (lava-nc $(.venv-lava/bin/python -c 'from importlib.metadata import version; print(version("lava-nc"))'))"
else
  rm -rf .venv-lava
  echo "lsnn setup: no CPython 3.10 found: Lava checks are off (lsnn run uses the emulator alone)." \
       "lava-nc 0.10 imports only on 3.10: pyenv install 3.10, then run this again (or set LSNN_LAVA_PYTHON)."
fi
echo "lsnn setup: done. Activate with: source .venv/bin/activate"
