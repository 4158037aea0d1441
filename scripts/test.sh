#!/usr/bin/env bash
# Set everything up from scratch and run the whole test suite: ruff, mypy, pytest -n 2.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
venv="${BBP_VENV:-.venv}"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/mypy"
"$venv/bin/python" -m pytest -n 2 -q "$@"
