"""Shared builders for the self-supervised rule tests (simclr, loco, gim)."""

from __future__ import annotations

from typing import Any

from beyond_backprop.config import ExperimentConfig
from tests.helpers import tiny_config


def ssl_config(
    rule: dict[str, Any],
    channels: tuple[int, ...] = (4, 8),
    tmp_path: Any = None,
    **sections: Any,
) -> ExperimentConfig:
    """A tiny CNN on scikit-learn digits (8x8) trained by ``rule``; one pool per block."""
    pools = [True, True, False, False][: len(channels)]
    model = {"arch": "cnn", "channels": list(channels), "pool": pools, "fc_width": 0}
    base: dict[str, Any] = {
        "data": {"name": "digits", "batch_size": 16},
        "model": model,
        "rule": rule,
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "schedule": "constant"},
    }
    base.update(sections)
    return tiny_config(tmp_path, **base)
