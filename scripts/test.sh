#!/usr/bin/env bash
# Set up everything the tests need, then lint and run the whole test suite
# (unit tests, the plugin under PySide6/PyQt5/PyQt6 offscreen, and a real Krita).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
if [ $# -eq 0 ]; then
  # The plugin runs on PyQt5 in Krita 5 and PyQt6 in Krita 6: test its Qt code under both
  # (one Qt binding per process); the main run below covers PySide6 and a real Krita.
  for api in pyqt5 pyqt6; do
    echo "== plugin tests under $api"
    PYTEST_QT_API=$api .venv/bin/python -m pytest tests/plugin -q
  done
fi
export INKHUE_REQUIRE_KRITA=${INKHUE_REQUIRE_KRITA:-1}
export INKHUE_REQUIRE_RSVG=${INKHUE_REQUIRE_RSVG:-1}
echo "== full test suite"
exec .venv/bin/python -m pytest "$@"
