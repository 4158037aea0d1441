"""Shared helpers for the benchmarks: environment facts and result files."""

from __future__ import annotations

import datetime
import json
import platform
import socket
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def environment() -> dict[str, Any]:
    """The facts a timing depends on."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_result(bench: str, machine: str, result: dict[str, Any]) -> Path:
    """Write ``result`` to ``results/<date>_<machine>_torch<ver>_<bench>.json`` and return it
    (a later run of the same benchmark on the same day replaces it: rename a file to keep it)."""
    version = torch.__version__.split("+")[0]
    name = f"{datetime.date.today():%Y%m%d}_{machine}_torch{version}_{bench}.json"
    path = RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return path
