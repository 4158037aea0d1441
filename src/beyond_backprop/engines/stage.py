"""``Stage``: this process's part of a staged run, and what its schedules share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from beyond_backprop.engines.messages import Channel
from beyond_backprop.engines.step import (
    Late,
    backward_blocks,
    forward_blocks,
    frozen_forward,
    learn_late,
)
from beyond_backprop.errors import WiringError
from beyond_backprop.models import BlockStack
from beyond_backprop.rules.base import Batch, LearningRule

Terms = dict[tuple[int, str], float]
Pairs = list[tuple[torch.Tensor, torch.Tensor]]
Messages = dict[str, torch.Tensor]


@dataclass
class Stage:
    """This process's part of the network and its link to the other stages.

    ``active`` (set every step from the rule's ``active_blocks``) decides who takes part: a
    stage whose blocks are all below the active ones runs them frozen and only passes its
    output up; a stage above the top active block sits the step out; messages go only between
    stages that take part (the top one is the stage holding the top active block).
    """

    rank: int
    world_size: int
    blocks: range
    stack: BlockStack
    rule: LearningRule
    locals: list[nn.Module | None]
    channel: Channel
    partition: list[range]
    microbatches: int = 1
    inbox: Any = None
    """The ``async`` schedule's ``ActivationInbox`` (None otherwise)."""
    active: range = range(0)
    """The blocks that learn in this step (all stages agree: it is a function of the epoch)."""
    late: Late | None = None
    """The ``decoupled`` schedule's update whose gradient from above is still to come."""
    late_input: Late | None = None
    """Forward unlocking: the update made on a synthetic input, with the real input that
    came after it (learned from at the next step)."""

    @property
    def first(self) -> bool:
        return self.rank == 0

    @property
    def last(self) -> bool:
        return self.rank == self.world_size - 1

    @property
    def runs(self) -> bool:
        """Whether this stage takes part in the step (it has a block at or below the top)."""
        return self.blocks.start < self.active.stop

    @property
    def top(self) -> bool:
        """Whether this stage holds the top active block (no stage above takes part)."""
        return self.blocks.stop >= self.active.stop

    @property
    def top_rank(self) -> int:
        """The rank of the stage holding the top active block."""
        return next(r for r, b in enumerate(self.partition) if b.stop >= self.active.stop)

    @property
    def learns(self) -> bool:
        """Whether this stage has an active block."""
        return self.blocks.start < self.active.stop and self.blocks.stop > self.active.start

    @property
    def below_learns(self) -> bool:
        """Whether the stage below has an active block (so it expects messages from here)."""
        return self.rank > 0 and self.partition[self.rank - 1].stop > self.active.start

    def forward(self, x: torch.Tensor | None, batch: Batch) -> Pairs:
        """Receive the input (or take the batch's), run the frozen blocks without gradients
        and the active ones for learning, and send the output up if a stage above takes part."""
        if not self.first:
            x = self.channel.recv_required(self.rank - 1)
        assert x is not None
        start, stop = self.blocks.start, min(self.blocks.stop, self.active.stop)
        learn_from = min(max(start, self.active.start), stop)
        x = frozen_forward(self.stack, x, start, learn_from)
        modules = list(self.stack.blocks[learn_from:stop])
        pairs = forward_blocks(modules, learn_from, x, self.rule.wiring.needs_input_grad)
        if not self.top:
            self.channel.send(pairs[-1][1] if pairs else x, self.rank + 1)
        return pairs

    @property
    def unlocked(self) -> bool:
        """Forward unlocking: a stage above the first under a ``synthetic`` forward wiring
        learns from the rule's synthetic input instead of waiting for the real one."""
        return not self.first and self.rule.wiring.forward == "synthetic"

    def forward_synthetic(self, batch: Batch) -> Pairs:
        """Run the stage's blocks for learning on the rule's synthetic input (nothing is
        received or sent: the real input comes after the update, ``pass_real_input``)."""
        start = self.blocks.start
        x = self.rule.synthetic_input(start, self.locals[start], batch)
        if x is None:
            raise WiringError(f"the rule gives block {start} no synthetic input to start from")
        modules = list(self.stack.blocks[start : self.blocks.stop])
        return forward_blocks(modules, start, x.detach(), self.rule.wiring.needs_input_grad)

    def pass_real_input(self, batch: Batch, step: int, epoch: int) -> None:
        """After a forward-unlocked update: receive the real input, keep it for the rule to
        learn from (``late_terms`` at the next step), and pass the real output up."""
        x = self.channel.recv_required(self.rank - 1)
        start = self.blocks.start
        with torch.no_grad():
            out = self.stack.forward_range(x, start, self.blocks.stop)
        empty = x.new_empty(0)
        self.late_input = Late(start, step, epoch, x, empty, batch.x, batch.y, {"input": x})
        if not self.top:
            self.channel.send(out, self.rank + 1)

    def backward(
        self, pairs: Pairs, batch: Batch, step: int, epoch: int, inbox: Messages,
        scale: float = 1.0, synthetic_first: bool = False,
    ) -> tuple[Terms, Messages]:  # fmt: skip
        """The active blocks' objectives; returns the terms and the messages for the stage
        below (empty when it has no active block)."""
        first = max(self.blocks.start, self.active.start)
        result = backward_blocks(
            self.rule, self.locals, pairs, first, len(self.stack), batch, step, epoch, inbox,
            scale, synthetic_first,
        )  # fmt: skip
        down = dict(result.outbox)
        if result.grad_below is not None:
            down["grad"] = result.grad_below
        return result.terms, down

    def await_late(self) -> None:
        """Receive the gradient the pending late update waits for (the stage above sent it
        after its step; keep it, to learn from at the next step)."""
        if self.late is not None and "grad" not in self.late.inbox:
            self.late.inbox["grad"] = self.channel.recv_named(self.rank + 1)["grad"]

    def learn_late(self) -> Terms:
        """The rule's late terms for the pending updates, once their signals are here."""
        self.await_late()
        terms: Terms = {}
        for late in (self.late, self.late_input):
            if late is not None:
                terms.update(learn_late(self.rule, self.locals, late, len(self.stack)))
        self.late = self.late_input = None
        return terms
