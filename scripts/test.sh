#!/usr/bin/env bash
# Set up everything the tests need, then lint and run the whole test suite
# (unit tests, the plugin under PySide6/PyQt5/PyQt6 offscreen, and a real Krita).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check .
export INKHUE_REQUIRE_KRITA=${INKHUE_REQUIRE_KRITA:-1}
exec .venv/bin/python -m pytest "$@"
