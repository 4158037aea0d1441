"""Auxiliary classifier heads for local-loss rules (greedy, DGL, local parallel updates).

The public API is small:

- ``HeadConfig``: the options of a head, meant to be nested in a rule's ``Config``.
- ``auxiliary_head(shape, num_classes, config)``: one head for features of ``shape``.
- ``build_heads(stack, config, blocks)``: a head for each listed block (None elsewhere); the
  stack's last block never gets one, since it already outputs the logits.
- ``head_predictions(stack, heads, x)``: what evaluation scores: key None is the network's
  prediction (the last block's output), integer keys each block's own head.

The loss a block learns from through its head is the rules' business (``rules/auxiliary.py``).

Two families, from the papers:

- ``conv`` (Belilovsky et al., 1812.11446, Sec. 3, the auxiliary problem of depth k): ``k - 1``
  3x3 convolutions of ``width`` channels with ReLU, spatial averaging to ``pool x pool``, then a
  linear classifier. ``depth`` is the paper's k.
- ``mlp`` (Belilovsky et al., 1901.08164, Sec. 4, the MLP-SR auxiliary network): spatial
  averaging to ``pool x pool`` first (cheap, and the head's cost no longer grows with the
  resolution), then an MLP of ``depth`` linear layers, ``width`` wide, with ReLU between.

Flat features (an MLP stack) skip the convolutions and the averaging in both families.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from beyond_backprop.models.stack import BlockStack


@dataclass(frozen=True)
class HeadConfig:
    """The auxiliary classifier put on a block's output."""

    kind: Literal["conv", "mlp"] = "mlp"
    """``conv``: the greedy paper's k-layer CNN head; ``mlp``: DGL's average-then-MLP head."""
    depth: int = 1
    """Learned layers in the head (the greedy paper's k): 1 is a linear classifier."""
    width: int = 128
    """Channels (conv) or units (mlp) of the head's hidden layers."""
    pool: int = 2
    """Spatial averaging to ``pool x pool`` before the classifier (image features only)."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        return [
            (name, f"{getattr(self, name)} is invalid: must be >= 1")
            for name in ("depth", "width", "pool")
            if getattr(self, name) < 1
        ]


def auxiliary_head(shape: tuple[int, ...], num_classes: int, config: HeadConfig) -> nn.Module:
    """A classifier for one example's features of ``shape`` (``(C, H, W)`` or ``(D,)``)."""
    layers: list[nn.Module] = []
    hidden = config.depth - 1
    if len(shape) == 3:
        channels = shape[0]
        if config.kind == "conv":
            for _ in range(hidden):
                layers += [nn.Conv2d(channels, config.width, 3, padding=1), nn.ReLU()]
                channels = config.width
            hidden = 0  # the conv family ends with a single linear layer
        layers += [nn.AdaptiveAvgPool2d(config.pool), nn.Flatten()]
        features = channels * config.pool * config.pool
    elif len(shape) == 1:
        features = shape[0]
    else:
        raise ValueError(f"auxiliary heads need (C, H, W) or (D,) features, got shape {shape}")
    for _ in range(hidden):
        layers += [nn.Linear(features, config.width), nn.ReLU()]
        features = config.width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


def build_heads(
    stack: BlockStack, config: HeadConfig, blocks: Iterable[int] | None = None
) -> list[nn.Module | None]:
    """One head per block in ``blocks`` (default: every block but the last), None elsewhere.

    The last block outputs the logits, so it is its own head and never gets another one.
    """
    last = len(stack) - 1
    num_classes = stack.output_shapes[last][0]
    wanted = set(range(last) if blocks is None else blocks) - {last}
    return [
        auxiliary_head(stack.output_shapes[k], num_classes, config) if k in wanted else None
        for k in range(len(stack))
    ]


def head_predictions(
    stack: BlockStack, heads: Sequence[nn.Module | None], x: Tensor
) -> dict[int | None, Tensor]:
    """The network's prediction (key None: the last block's output) and each block's own
    prediction under its index (its head's output; the logits for the last block)."""
    out: dict[int | None, Tensor] = {}
    h = x
    for k, block in enumerate(stack.blocks):
        h = block(h)
        head = heads[k]
        if head is not None:
            out[k] = head(h)
    out[len(stack) - 1] = h
    out[None] = h
    return out
