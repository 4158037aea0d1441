"""``Stage``: this process's part of a staged run, and what every schedule does with it
(receive, run the blocks, send); a schedule decides when."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from beyond_backprop.engines.channel import Channel
from beyond_backprop.engines.step import backward_blocks, forward_blocks, frozen_forward
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
    """Every stage's blocks, in pipeline order (one per rank, unless the schedule places
    several on each rank: then ``blocks`` is this rank's first and ``ranks`` places them)."""
    ranks: list[int] = field(default_factory=list)
    """The rank holding each stage of ``partition`` (empty: stage r on rank r)."""
    active: range = range(0)
    """The blocks that learn in this step (all stages agree: it is a function of the epoch)."""

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

    def forward(self, x: torch.Tensor | None, batch: Batch, parts: int = 1) -> Pairs:
        """Receive the input (or take the batch's), run the frozen blocks without gradients
        and the active ones for learning, and send the output up if a stage above takes part.
        ``parts`` > 1: the input comes, and the output goes, as that many micro-batches (the
        stage runs on them joined)."""
        if not self.first:
            pieces = [self.channel.recv_required(self.rank - 1) for _ in range(parts)]
            x = pieces[0] if parts == 1 else torch.cat(pieces)
        assert x is not None
        start, stop = self.blocks.start, min(self.blocks.stop, self.active.stop)
        learn_from = min(max(start, self.active.start), stop)
        x = frozen_forward(self.stack, x, start, learn_from)
        modules = list(self.stack.blocks[learn_from:stop])
        pairs = forward_blocks(modules, learn_from, x, self.rule.wiring.needs_input_grad)
        if not self.top:
            out = pairs[-1][1] if pairs else x
            for piece in torch.tensor_split(out, parts) if parts > 1 else (out,):
                self.channel.send(piece, self.rank + 1)
        return pairs

    def backward(
        self, pairs: Pairs, batch: Batch, step: int, epoch: int, inbox: Messages,
        scale: float = 1.0, synthetic_first: bool = False, retain_graph: bool = False,
    ) -> tuple[Terms, Messages]:  # fmt: skip
        """The active blocks' objectives; returns the terms and the messages for the stage
        below (empty when it has no active block)."""
        first = max(self.blocks.start, self.active.start)
        result = backward_blocks(
            self.rule, self.locals, pairs, first, len(self.stack), batch, step, epoch, inbox,
            scale, synthetic_first, retain_graph,
        )  # fmt: skip
        down = dict(result.outbox)
        if result.grad_below is not None:
            down["grad"] = result.grad_below
        return result.terms, down
