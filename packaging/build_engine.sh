#!/usr/bin/env bash
# Build the engine's wheel and sdist: packaging/build_engine.sh [OUT_DIR]   (default: dist/)
# Uses $PYTHON (default: the repository's .venv made by scripts/setup.sh, else python3: a
# distribution's own python3 refuses pip installs, PEP 668); installs `build` into it when missing.
# `python -m build` makes the sdist, then the wheel from that sdist, in an isolated env
# (setuptools from pyproject.toml's [build-system]); it needs the network or a pip cache
# holding setuptools. With no network, set INKHUE_BUILD_NO_ISOLATION=1 to build with the
# setuptools already in $PYTHON's environment.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/dist}"
py="${PYTHON:-}"
if [[ -z "$py" ]]; then
    py=python3
    [[ -x "$root/.venv/bin/python" ]] && py="$root/.venv/bin/python"
fi
# build.__main__, not build: setuptools' build/ folder in the current directory imports as a
# namespace package "build", and then `python -m build` says "No module named build.__main__"
if ! "$py" -c "import build.__main__" 2>/dev/null; then
    "$py" -m pip install --quiet build
fi
flags=()
if [[ "${INKHUE_BUILD_NO_ISOLATION:-0}" == "1" ]]; then
    flags+=(--no-isolation)
fi
"$py" -m build --sdist --wheel ${flags[@]+"${flags[@]}"} --outdir "$out" "$root"
ls -l "$out"/inkhue-*.whl "$out"/inkhue-*.tar.gz
