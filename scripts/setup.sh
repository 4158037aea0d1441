#!/usr/bin/env bash
# Create .venv (or $BBP_VENV) and install beyond-backprop into it, torch first.
# Usage: scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${BBP_VENV:-.venv}"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# torch first, pinned: anything that depends on torch would otherwise resolve a CUDA build
"$venv/bin/python" -m pip install --quiet "torch==2.13.0"
if [[ "${1:-}" == "--dev" ]]; then
    "$venv/bin/python" -m pip install --quiet -e ".[dev]"
else
    "$venv/bin/python" -m pip install --quiet -e .
fi
echo "installed into $venv: $("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)')"
