"""Small builders shared by tests."""

from __future__ import annotations

from typing import Any

from beyond_backprop.config import ExperimentConfig, build_experiment_config


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
