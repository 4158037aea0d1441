"""Simulated devices: blocks whose compute is a timed wait, so that K processes on a machine
with fewer cores behave like K accelerators (their compute does not compete for the CPU),
while the messages, the Python and the schedules between them are real."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from beyond_backprop.models.registry import register_architecture
from beyond_backprop.models.stack import BlockStack


class TimedWait(torch.autograd.Function):
    """The identity, whose forward and backward each wait a set time (a device's compute)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, forward_s: float, backward_s: float) -> Tensor:
        time.sleep(forward_s)
        ctx.backward_s = backward_s
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        time.sleep(ctx.backward_s)
        return grad, None, None


class SimulatedBlock(nn.Module):
    """A tiny linear layer (so the block has parameters and gradients) and a timed wait."""

    def __init__(
        self, width_in: int, width_out: int, config: SimulatedConfig, logits: bool
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(width_in, width_out)
        self.config, self.logits = config, logits

    def forward(self, x: Tensor) -> Tensor:
        h = self.linear(x.flatten(1))
        # a training-mode forward waits with or without a graph (a schedule that runs a block
        # without one, to re-run it later, pays for both); evaluation mode costs nothing
        if self.training:
            share = x.shape[0] / self.config.rows  # a device's time grows with the rows
            forward_s = self.config.forward_ms / 1000 * share
            h = TimedWait.apply(h, forward_s, self.config.backward_ms / 1000 * share)
        return h if self.logits else torch.relu(h)


@register_architecture("simulated", "simulated devices: blocks whose compute is a timed wait")
@dataclass(frozen=True)
class SimulatedConfig:
    """``blocks`` blocks of ``width`` units, each costing ``forward_ms`` + ``backward_ms`` of
    waiting per training step of ``rows`` examples (the last block ends with the classifier).

    Deviations: the wait stands for a block's compute on its own accelerator; only
    training-mode passes wait (evaluation, and frozen blocks, which run in eval mode, do
    not), and an auxiliary head or synthesizer costs no simulated time.
    """

    blocks: int = 4
    """How many blocks (one per simulated device when staged one block per stage)."""
    width: int = 16
    """Units per block (tiny: the real compute is negligible)."""
    forward_ms: float = 10.0
    """Milliseconds a block's forward pass waits."""
    backward_ms: float = 20.0
    """Milliseconds a block's backward pass waits."""
    rows: int = 32
    """The waits are for a batch of this many rows; other sizes (micro-batches) wait in
    proportion, as a device's compute does."""

    @classmethod
    def debug(cls) -> SimulatedConfig:
        """Two blocks that do not wait."""
        return cls(blocks=2, width=8, forward_ms=0.0, backward_ms=0.0)

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        for key in ("blocks", "width", "rows"):
            if getattr(self, key) < 1:
                found.append((key, f"{getattr(self, key)} is invalid: must be >= 1"))
        for key in ("forward_ms", "backward_ms"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                found.append((key, f"{value} is invalid: must be a finite number >= 0"))
        return found

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> BlockStack:
        """``blocks`` simulated blocks; the last one outputs the logits."""
        widths = [math.prod(input_shape)] + [self.width] * (self.blocks - 1) + [num_classes]
        blocks: list[nn.Module] = [
            SimulatedBlock(widths[k], widths[k + 1], self, logits=k == self.blocks - 1)
            for k in range(self.blocks)
        ]
        return BlockStack(blocks, input_shape)
