"""Auxiliary classifier heads for local-loss rules (greedy, DGL, local parallel updates).

The public API is small:

- ``HeadConfig``: the options of a head, meant to be nested in a rule's ``Config``.
- ``auxiliary_head(shape, num_classes, config)``: one head for features of ``shape``.
- ``build_heads(stack, config, blocks)``: a head for each listed block (None elsewhere); the
  stack's last block never gets one, since it already outputs the logits.
- ``head_predictions(stack, heads, x)``: what evaluation scores: key None is the network's
  prediction (the last block's output), integer keys each block's own head.

The loss a block learns from through its head is the rules' business (``rules/auxiliary.py``).

Two configurable families and the three fixed heads of DGL's auxiliary-network study:

- ``conv`` (Belilovsky et al., 1812.11446, Sec. 3, the auxiliary problem of depth k): ``k - 1``
  3x3 convolutions of ``width`` channels and ReLU, spatial averaging to ``pool x pool``, then
  a linear classifier; with ``batchnorm`` (the authors' code) the convolutions lose their bias
  and gain a BatchNorm before the ReLU, and the averaged features a BatchNorm too.
- ``pool_mlp``: spatial averaging to ``pool x pool``, then ``depth`` linear layers ``width``
  wide with ReLU between (BatchNorm before each ReLU when ``batchnorm``). A cheap head of our
  own, not one of the papers'; ``mlp`` is its former name and is kept as an alias.
- ``mlp_sr``, ``dgl_mlp``, ``cnn`` (Belilovsky et al., 1901.08164, Sec. 4.1 and Table 1; the
  authors' ``auxillary_classifier2``), all at the block's width C: ``mlp_sr`` averages to
  ``ceil(H/4) x ceil(W/4)``, three 1x1 convolutions (C channels, no bias) + BN + ReLU, averages
  to 2x2, three ``Linear(4C, 4C)`` + BN + ReLU, a linear classifier; ``dgl_mlp`` (the paper's
  "MLP") is the same without the convolutions and the first averaging; ``cnn`` is two 3x3
  convolutions (no bias) + BN + ReLU, averaging to 2x2, BN, a linear classifier. ``depth``,
  ``width`` and ``pool`` do not apply to them.

Flat features (an MLP stack) skip the convolutions and the averaging in every family.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from beyond_backprop.models.stack import BlockStack

HeadKind = Literal["conv", "pool_mlp", "mlp", "mlp_sr", "dgl_mlp", "cnn"]


@dataclass(frozen=True)
class HeadConfig:
    """The auxiliary classifier put on a block's output."""

    kind: HeadKind = "pool_mlp"
    """``conv``: the greedy paper's k-layer CNN head; ``pool_mlp`` (alias ``mlp``): average,
    then an MLP; ``mlp_sr``, ``dgl_mlp``, ``cnn``: DGL's three auxiliary networks, exactly."""
    depth: int = 1
    """Learned layers in the head (the greedy paper's k): 1 is a linear classifier."""
    width: int = 128
    """Channels (conv) or units (pool_mlp) of the head's hidden layers."""
    pool: int = 2
    """Spatial averaging to ``pool x pool`` before the classifier (image features only)."""
    batchnorm: bool = False
    """BatchNorm after every hidden layer of ``conv`` and ``pool_mlp`` heads."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        return [
            (name, f"{getattr(self, name)} is invalid: must be >= 1")
            for name in ("depth", "width", "pool")
            if getattr(self, name) < 1
        ]


def _mlp(features: int, hidden: int, width: int, batchnorm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for _ in range(hidden):
        layers.append(nn.Linear(features, width))
        layers += [nn.BatchNorm1d(width)] if batchnorm else []
        layers.append(nn.ReLU())
        features = width
    return layers


def _dgl_head(kind: str, shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """DGL's ``mlp_sr``, ``dgl_mlp`` or ``cnn`` head (module docstring)."""
    if len(shape) == 1:
        hidden = 0 if kind == "cnn" else 3
        features = shape[0]
        return nn.Sequential(
            *_mlp(features, hidden, features, True), nn.Linear(features, num_classes)
        )
    c, h, w = shape
    layers: list[nn.Module] = []
    if kind == "mlp_sr":
        # reduce the resolution 16-fold first, so the 1x1 convolutions stay cheap
        layers.append(nn.AdaptiveAvgPool2d((math.ceil(h / 4), math.ceil(w / 4))))
    convs = {"mlp_sr": (3, 1), "cnn": (2, 3)}.get(kind, (0, 1))
    for _ in range(convs[0]):
        conv = nn.Conv2d(c, c, convs[1], padding=convs[1] // 2, bias=False)
        layers += [conv, nn.BatchNorm2d(c), nn.ReLU()]
    layers.append(nn.AdaptiveAvgPool2d(2))
    if kind == "cnn":
        return nn.Sequential(
            *layers, nn.BatchNorm2d(c), nn.Flatten(), nn.Linear(4 * c, num_classes)
        )
    mlp = _mlp(4 * c, 3, 4 * c, True)
    return nn.Sequential(*layers, nn.Flatten(), *mlp, nn.Linear(4 * c, num_classes))


def auxiliary_head(shape: tuple[int, ...], num_classes: int, config: HeadConfig) -> nn.Module:
    """A classifier for one example's features of ``shape`` (``(C, H, W)`` or ``(D,)``)."""
    if len(shape) not in (1, 3):
        raise ValueError(f"auxiliary heads need (C, H, W) or (D,) features, got shape {shape}")
    if config.kind in ("mlp_sr", "dgl_mlp", "cnn"):
        return _dgl_head(config.kind, shape, num_classes)
    layers: list[nn.Module] = []
    hidden = config.depth - 1
    if len(shape) == 3:
        channels = shape[0]
        if config.kind == "conv":
            bn = config.batchnorm
            for _ in range(hidden):
                # with BatchNorm after it a bias is redundant (the authors' code has none)
                layers.append(nn.Conv2d(channels, config.width, 3, padding=1, bias=not bn))
                layers += [nn.BatchNorm2d(config.width)] if bn else []
                layers.append(nn.ReLU())
                channels = config.width
            hidden = 0  # the conv family ends with a single linear layer
            layers.append(nn.AdaptiveAvgPool2d(config.pool))
            layers += [nn.BatchNorm2d(channels)] if bn else []  # the authors' BN before the linear
            layers.append(nn.Flatten())
        else:
            layers += [nn.AdaptiveAvgPool2d(config.pool), nn.Flatten()]
        features = channels * config.pool * config.pool
    else:
        features = shape[0]
    layers += _mlp(features, hidden, config.width, config.batchnorm)
    features = config.width if hidden else features
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
