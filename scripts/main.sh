#!/usr/bin/env bash
# Set everything up from scratch and run the main job on real data: every rule side by side on
# MNIST (the quick suite), ending with the comparison table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv="${BBP_VENV:-.venv}"
"$venv/bin/bbp" compare --suite configs/suites/quick.yaml "$@"
echo "main job: $((SECONDS / 60)) min $((SECONDS % 60)) s in all (set-up included)"
