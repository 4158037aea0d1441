"""A learning rule of your own in one file: every block learns from a linear classifier on
its own output (a local, purely forward rule: no gradient crosses a block boundary), as in the
linear-auxiliary variant of greedy layerwise learning (Belilovsky et al., arXiv 1812.11446,
Sec. 3.1) with all blocks trained at once.

    python examples/own_rule.py [--root runs] [--epochs 3]
    bbp train --plugin examples/own_rule.py --config configs/smoke/backprop.yaml \\
        --set rule.name=local_linear

Its oracle: on a one-block stack the rule is back-propagation (the block's own output is the
logits), which ``tests/unit/api/test_examples.py`` checks.

Deviations: the classifier reads the block's output flattened, without the paper's spatial
averaging.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import nn

import beyond_backprop as bbp
from beyond_backprop.rules.base import BlockContext, Objective


@bbp.register_rule("local_linear", "every block learns from a linear classifier on its output")
class LocalLinear(bbp.LearningRule):
    """Each block's loss is the cross-entropy of a linear classifier on its output; the last
    block learns from its own logits.

    Deviations: see the module docstring.
    """

    @dataclass(frozen=True)
    class Config:
        """Options of the rule (``rule.*`` in YAML)."""

        label_smoothing: float = 0.0
        """Label smoothing of every block's cross-entropy."""

    default_wiring: ClassVar[bbp.Wiring] = bbp.Wiring(forward="activation", backward="none")

    def build_locals(self, stack: bbp.BlockStack) -> list[nn.Module | None]:
        """A linear classifier after every block but the last."""
        classes = math.prod(stack.output_shapes[-1])
        return [
            nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), classes))
            for shape in stack.output_shapes[:-1]
        ] + [None]

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """Cross-entropy of the block's classifier (the last block: of its own output)."""
        logits = ctx.h_out if ctx.is_last else ctx.local(ctx.h_out)
        loss = F.cross_entropy(logits, ctx.batch.y, label_smoothing=self.config.label_smoothing)
        return bbp.LocalLoss({"loss": loss})


CONFIG: dict[str, Any] = {
    "name": "own-rule",
    "data": {"name": "digits", "batch_size": 64},
    "model": {"arch": "mlp", "hidden": [64, 64]},
    "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "train": {"epochs": 3, "log_every": 10},
    "engine": {"threads": 1},
}


def main(root: str = "runs", epochs: int = 3) -> bbp.RunResult:
    """Train an MLP with the rule; returns the run's directory and summary."""
    return bbp.train(
        CONFIG, rule=LocalLinear, overrides=[f"log.root={root}", f"train.epochs={epochs}"]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="train an MLP with a rule of your own")
    parser.add_argument("--root", default="runs", help="where the run directory goes")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    result = main(args.root, args.epochs)
    print(f"test accuracy {100 * result.summary['accuracy']:.2f}% | run {result.run_dir}")
