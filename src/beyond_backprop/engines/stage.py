"""``Stage``: this process's part of a staged run, and what its schedules share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from beyond_backprop.engines.messages import Channel
from beyond_backprop.engines.step import backward_blocks, forward_blocks
from beyond_backprop.models import BlockStack
from beyond_backprop.rules.base import Batch, LearningRule

Terms = dict[tuple[int, str], float]
Pairs = list[tuple[torch.Tensor, torch.Tensor]]
Messages = dict[str, torch.Tensor]


@dataclass
class Stage:
    """This process's part of the network and its link to the other stages."""

    rank: int
    world_size: int
    blocks: range
    stack: BlockStack
    rule: LearningRule
    locals: list[nn.Module | None]
    channel: Channel
    microbatches: int = 1
    inbox: Any = None
    """The ``async`` schedule's ``ActivationInbox`` (None otherwise)."""

    @property
    def first(self) -> bool:
        return self.rank == 0

    @property
    def last(self) -> bool:
        return self.rank == self.world_size - 1

    def forward(
        self, x: torch.Tensor | None, batch: Batch
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Receive the input (or take the batch's), run the blocks, send the output up."""
        if not self.first:
            x = self.channel.recv_required(self.rank - 1)
        assert x is not None
        modules = list(self.stack.blocks[self.blocks.start : self.blocks.stop])
        pairs = forward_blocks(modules, self.blocks.start, x, self.rule.wiring.needs_input_grad)
        if not self.last:
            self.channel.send(pairs[-1][1], self.rank + 1)
        return pairs

    def backward(
        self, pairs: Pairs, batch: Batch, step: int, epoch: int, inbox: Messages, scale: float = 1.0
    ) -> tuple[Terms, Messages]:
        """The blocks' objectives; returns the terms and the messages for the stage below."""
        first, total = self.blocks.start, len(self.stack)
        result = backward_blocks(
            self.rule, self.locals, pairs, first, total, batch, step, epoch, inbox, scale
        )
        down = dict(result.outbox)
        if result.grad_below is not None:
            down["grad"] = result.grad_below
        return result.terms, down
