#!/usr/bin/env bash
# Set up InkHue on a fresh Debian 12 machine: a .venv with the engine and the given extras.
#   scripts/setup.sh            engine + CPU ONNX Runtime (enough to colorize)
#   scripts/setup.sh --dev      everything the tests need: torch (CPU), training, Qt bindings,
#                               and the apt packages of the real-Krita tests
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1

PY=${PYTHON:-python3}
# A .venv without pip is what a failed `python3 -m venv` leaves (Debian/Ubuntu without the
# python3-venv package: no ensurepip): make it again rather than fail at every re-run.
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  if ! "$PY" -m venv .venv; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      echo "setup: apt-get install python3-venv"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
      "$PY" -m venv .venv
    else
      echo "setup: '$PY -m venv' failed; on Debian/Ubuntu: sudo apt-get install python3-venv" >&2
      exit 1
    fi
  fi
fi
pip() { .venv/bin/python -m pip -q --disable-pip-version-check "$@"; }

if [ "$dev" = 1 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    need=""
    # librsvg2-bin: rsvg-convert rasterizes the corpus' SVGs (tests/training/test_corpus.py)
    for pkg in krita python3-pyqt5 xvfb xauth imagemagick librsvg2-bin; do
      dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
    done
    if [ -n "$need" ]; then
      echo "setup: apt-get install$need"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
    fi
  fi
  # torch pinned: 2.13.0 is the CPU build on local disk; an unpinned torch pulls GBs of CUDA.
  pip install torch==2.13.0
  pip install -e '.[cpu,train,ui,dev,ray]'
  # PyQt5 / PyQt6: the plugin's Krita 5 and Krita 6 code paths are tested under both.
  pip install PyQt5 PyQt6
else
  pip install -e '.[cpu]'
fi
echo "setup: ready ($(.venv/bin/python --version), inkhue $(.venv/bin/python -c 'import inkhue_engine; print(inkhue_engine.__version__)'))"
