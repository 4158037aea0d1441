"""Your own network, trained block by block with decoupled greedy learning (DGL,
Belilovsky et al., arXiv 1901.08164) on scikit-learn's 8x8 digits.

    python examples/own_stack.py [--root runs] [--epochs 3]

The network is an ordinary ``nn.Sequential`` cut into three blocks. ``make_stack`` is passed
to ``train`` by reference, so the run's ``config.yaml`` names it as
``model.arch: python:<this file>:make_stack`` and the CLI can resume, probe and compare it:

    bbp eval --probe RUN_DIR
"""

from __future__ import annotations

import argparse
from typing import Any

from torch import nn

import beyond_backprop as bbp

CONFIG: dict[str, Any] = {
    "name": "own-stack-dgl",
    "data": {"name": "digits", "batch_size": 64},
    "rule": {"name": "dgl", "head": {"kind": "mlp", "depth": 2, "width": 32}},
    "optim": {"name": "adam", "lr": 0.003},
    "train": {"epochs": 3, "log_every": 10},
    "engine": {"threads": 1},
}


def make_stack(input_shape: tuple[int, ...], num_classes: int, width: int = 32) -> bbp.BlockStack:
    """Two convolutional blocks and a classifier block; ``width`` is a ``model.width`` option."""
    channels = input_shape[0]
    model = nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(),        # block 0
        nn.Conv2d(16, width, 3, padding=1), nn.ReLU(),           # block 1
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, num_classes),  # block 2
    )  # fmt: skip
    return bbp.BlockStack.from_sequential(model, [2, 4], input_shape)


def main(root: str = "runs", epochs: int = 3) -> bbp.RunResult:
    """Train the stack with DGL; returns the run's directory and summary."""
    return bbp.train(
        CONFIG, stack=make_stack, overrides=[f"log.root={root}", f"train.epochs={epochs}"]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="runs", help="where the run directory goes")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    result = main(args.root, args.epochs)
    print(f"test accuracy {100 * result.summary['accuracy']:.2f}% | run {result.run_dir}")
