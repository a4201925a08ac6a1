#!/usr/bin/env bash
# Build the engine's wheel and sdist: packaging/build_engine.sh [OUT_DIR]   (default: dist/)
# Uses $PYTHON (default: python3); installs the `build` package into it when missing.
# `python -m build` makes the sdist, then the wheel from that sdist, in an isolated env
# (setuptools from pyproject.toml's [build-system]); it needs the network or a pip cache
# holding setuptools. With no network, set INKHUE_BUILD_NO_ISOLATION=1 to build with the
# setuptools already in $PYTHON's environment.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/dist}"
py="${PYTHON:-python3}"
if ! "$py" -c "import build" 2>/dev/null; then
    "$py" -m pip install --quiet build
fi
flags=()
if [[ "${INKHUE_BUILD_NO_ISOLATION:-0}" == "1" ]]; then
    flags+=(--no-isolation)
fi
"$py" -m build --sdist --wheel ${flags[@]+"${flags[@]}"} --outdir "$out" "$root"
ls -l "$out"/inkhue-*.whl "$out"/inkhue-*.tar.gz
