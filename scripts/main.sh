#!/usr/bin/env bash
# Set everything up from scratch and run the main job on real data: back-propagation on MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv="${BBP_VENV:-.venv}"
"$venv/bin/bbp" train --config configs/mnist/backprop.yaml "$@"
