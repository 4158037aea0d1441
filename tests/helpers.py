"""Small builders shared by tests."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import torch

from beyond_backprop.cli.app import main
from beyond_backprop.config import ExperimentConfig, build_experiment_config

AVAILABLE_DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
"""The devices tests that take one run on: the CPU, and CUDA where torch sees a GPU."""


def tiny_config(tmp_path: Any = None, **sections: Any) -> ExperimentConfig:
    """A seconds-long config on the synthetic dataset; ``sections`` override YAML sections."""
    data: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "data": {"name": "synthetic", "batch_size": 32},
        "model": {"arch": "mlp", "hidden": [16, 16]},
        "rule": {"name": "backprop"},
        "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "train": {"epochs": 2, "log_every": 2},
        "engine": {"threads": 1},
    }
    if tmp_path is not None:
        data["log"] = {"root": str(tmp_path / "runs"), "progress": False}
    for key, value in sections.items():
        if isinstance(value, dict) and key not in ("model", "rule"):  # sections: replaced whole
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return build_experiment_config(data)


def run_cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Run ``bbp ARGS`` in this process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["bbp", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 0), out.out, out.err
