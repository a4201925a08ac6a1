#!/usr/bin/env bash
# The real-Krita tests, for CI: tests/krita/run_real_krita.sh [extra pytest args]
#
# Installs Krita, PyQt5 for Krita's Python, Xvfb and ImageMagick with apt when they are
# missing (needs root; set INKHUE_KRITA_NO_INSTALL=1 to skip), then runs the tests marked
# `krita` with INKHUE_REQUIRE_KRITA=1, so a Krita that is still missing FAILS instead of
# skipping. Logs, result JSON and the screenshot (krita-docker.png) go to test-artifacts/
# (or $INKHUE_TEST_ARTIFACTS). Every Krita run has a hard timeout and is killed with its
# process group, so this always terminates.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
cd "$root"

missing=()
for tool in krita kritarunner xvfb-run xauth import; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})) && [[ "${INKHUE_KRITA_NO_INSTALL:-0}" != "1" ]]; then
    echo "run_real_krita: installing Krita (missing: ${missing[*]})"
    sudo=""
    [[ "$(id -u)" == "0" ]] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
        krita python3-pyqt5 xvfb xauth imagemagick
fi

export INKHUE_REQUIRE_KRITA=1
exec "$py" -m pytest tests/krita -m krita -q -rA "$@"
