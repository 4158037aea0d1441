"""A dataset of your own: two interleaved spirals in the plane (seeded), registered by name
so that configs, ``bbp train --plugin examples/own_dataset.py`` and suites can use it.

    python examples/own_dataset.py [--root runs] [--epochs 20]
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

import beyond_backprop as bbp
from beyond_backprop.data.base import DatasetSplits, TensorSplit
from beyond_backprop.data.config import DataConfig
from beyond_backprop.data.finish import finalize


def spirals(n: int, generator: torch.Generator) -> TensorSplit:
    """``n`` points, half on each of two spirals of 1.5 turns, with noise 0.05; x is (n, 2)."""
    labels = torch.arange(n) % 2
    t = torch.rand(n, generator=generator) * 3 * math.pi + 0.5
    x = torch.stack([t * torch.cos(t + math.pi * labels), t * torch.sin(t + math.pi * labels)], 1)
    x = x / (3 * math.pi) + 0.05 * torch.randn(n, 2, generator=generator)
    return TensorSplit(x, labels)


@bbp.register_dataset("spirals", "two interleaved spirals in 2-D (seeded), 1000 / 500")
def load_spirals(cfg: DataConfig) -> DatasetSplits:
    """The same points for every run (seed 0): 1000 to train on, 500 to test on."""
    generator = torch.Generator().manual_seed(0)
    train, test = spirals(1000, generator), spirals(500, generator)
    return finalize("spirals", train, test, 2, cfg)  # limits, the validation split, normalising


CONFIG: dict[str, Any] = {
    "name": "own-dataset",
    "data": {"name": "spirals", "batch_size": 50},
    "model": {"arch": "mlp", "hidden": [64, 64, 64], "activation": "tanh"},
    "rule": {"name": "backprop"},
    "optim": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 20, "log_every": 20},
    "engine": {"threads": 1},
}


def main(root: str = "runs", epochs: int = 20) -> bbp.RunResult:
    """Train an MLP on the spirals with back-propagation; returns the run's result."""
    return bbp.train(CONFIG, overrides=[f"log.root={root}", f"train.epochs={epochs}"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="train on a dataset of your own")
    parser.add_argument("--root", default="runs", help="where the run directory goes")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    result = main(args.root, args.epochs)
    print(f"test accuracy {100 * result.summary['accuracy']:.2f}% | run {result.run_dir}")
