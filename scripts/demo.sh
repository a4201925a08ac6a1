#!/usr/bin/env bash
# Set up the engine and colorize the bundled example frames with the bundled default models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/inkhue info
.venv/bin/inkhue colorize examples/grayscale -o out/grayscale --task grayscale
.venv/bin/inkhue colorize examples/lineart -o out/lineart --task lineart --hints examples/lineart-hints
echo "demo: colorized frames are in out/grayscale and out/lineart"
