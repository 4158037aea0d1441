"""Online linear probes: the standard read-out of a self-supervised representation.

Each encoder block has a linear classifier trained during training on the block's *detached*
output (a cross-entropy term added to the block's local loss), so the probe reads the
representation without ever shaping it; the self-supervised rules' predictions are these
probes. The offline probes fitted on a finished run's frozen features are in ``eval/probe.py``.

Features: a block's output ``(C, H, W)`` is average-pooled to at most ``pool x pool`` cells and
flattened (so that a probe on a wide early block stays small); vectors are used as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch.nn.functional as F
from torch import Tensor, nn

from beyond_backprop.models.stack import BlockStack


def pooled(h: Tensor, pool: int) -> Tensor:
    """Probe features of ``h``: image features pooled to at most ``pool x pool``, flattened."""
    if h.dim() == 4:
        size = (min(pool, h.shape[2]), min(pool, h.shape[3]))
        h = F.adaptive_avg_pool2d(h, size)
    return h.flatten(1)


def pooled_size(shape: tuple[int, ...], pool: int) -> int:
    """Number of probe features for a block output of ``shape`` (no batch dimension)."""
    if len(shape) == 3:
        return shape[0] * min(pool, shape[1]) * min(pool, shape[2])
    return math.prod(shape)


class LinearProbe(nn.Module):
    """A linear classifier on pooled features (see ``pooled``)."""

    def __init__(self, in_shape: tuple[int, ...], num_classes: int, pool: int) -> None:
        super().__init__()
        self.pool = pool
        self.linear = nn.Linear(pooled_size(in_shape, pool), num_classes)

    def forward(self, h: Tensor) -> Tensor:
        """Class logits from a block output ``h``."""
        return self.linear(pooled(h, self.pool))


class ProbedLocal(nn.Module):
    """A block's local module for a self-supervised rule: the rule's own objective module
    (projection head, predictors; None for blocks trained by the gradient from above) and the
    online linear probe."""

    def __init__(self, objective: nn.Module | None, probe: LinearProbe) -> None:
        super().__init__()
        self.objective = objective
        self.probe = probe

    def probe_loss(self, h: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of the probe on the *detached* features: its gradient stops at the
        probe, so the representation is not trained on labels."""
        return F.cross_entropy(self.probe(h.detach()), y)


def probed_locals(
    feature_shapes: Sequence[tuple[int, ...]],
    objectives: Sequence[nn.Module | None],
    num_classes: int,
    pool: int,
    num_blocks: int,
) -> list[nn.Module | None]:
    """Locals for a stack whose first ``len(feature_shapes)`` blocks are the encoder: a
    ``ProbedLocal`` for each, None for the blocks above (the unused classifier)."""
    locals_: list[nn.Module | None] = [
        ProbedLocal(obj, LinearProbe(shape, num_classes, pool))
        for shape, obj in zip(feature_shapes, objectives, strict=True)
    ]
    return locals_ + [None] * (num_blocks - len(locals_))


def probe_predictions(
    features: Sequence[Tensor], locals_: Sequence[nn.Module | None]
) -> dict[int | None, Tensor]:
    """Block k's probe logits under key k; the top encoder block's under None (the network's
    prediction for a self-supervised rule is the linear read-out of its representation)."""
    out: dict[int | None, Tensor] = {}
    for k, h in enumerate(features):
        local = locals_[k]
        if not isinstance(local, ProbedLocal):
            raise TypeError(f"block {k} has no linear probe (its local is {type(local).__name__})")
        out[k] = local.probe(h)
    out[None] = out[len(features) - 1]
    return out


@runtime_checkable
class HasBlockFeatures(Protocol):
    """A rule whose representation of an image is not the plain block outputs (e.g. GIM's
    grid of patch representations) says so with ``block_features``."""

    def block_features(self, stack: BlockStack, x: Tensor) -> list[Tensor]:
        """The encoder's features for ``x``, one tensor per encoder block."""
        ...


def encoder_features(rule: object, stack: BlockStack, x: Tensor) -> list[Tensor]:
    """Features of ``x`` per encoder block: ``rule.block_features`` when the rule has it, else
    the outputs of every block below the classifier (the last block)."""
    if isinstance(rule, HasBlockFeatures):
        return rule.block_features(stack, x)
    features = []
    for block in stack.blocks[:-1]:
        x = block(x)
        features.append(x)
    return features
