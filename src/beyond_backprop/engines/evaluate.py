"""Evaluation of a rule's predictions on a split, without gradients."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from beyond_backprop.data import TensorSplit, iter_batches
from beyond_backprop.engines.device import to_device
from beyond_backprop.models import BlockStack
from beyond_backprop.rules.base import LearningRule


def evaluate(
    rule: LearningRule,
    stack: BlockStack,
    locals_: Sequence[nn.Module | None],
    split: TensorSplit,
    batch_size: int,
) -> dict[str, float]:
    """Accuracy and cross-entropy of every prediction the rule offers.

    Keys: ``accuracy`` and ``loss`` for the network's prediction, ``<k>/accuracy`` and
    ``<k>/loss`` for block k's own prediction (e.g. its auxiliary head).
    """
    modules = [stack, *(m for m in locals_ if m is not None)]
    modes = [m.training for m in modules]
    for module in modules:
        module.eval()
    correct: dict[int | None, float] = defaultdict(float)
    loss: dict[int | None, float] = defaultdict(float)
    with torch.no_grad():
        tensors = [*stack.parameters(), *stack.buffers()]
        device = tensors[0].device if tensors else torch.device("cpu")
        for x, y in iter_batches(split, batch_size):
            x, y = to_device(x, device), to_device(y, device)
            for key, logits in rule.predictions(stack, locals_, x).items():
                correct[key] += float((logits.argmax(dim=1) == y).sum())
                loss[key] += float(F.cross_entropy(logits, y, reduction="sum"))
    for module, mode in zip(modules, modes, strict=True):
        module.train(mode)
    n = len(split)
    metrics = {}
    for key in sorted(correct, key=lambda k: -1 if k is None else k):
        prefix = "" if key is None else f"{key}/"
        metrics[f"{prefix}accuracy"] = correct[key] / n
        metrics[f"{prefix}loss"] = loss[key] / n
    return metrics
