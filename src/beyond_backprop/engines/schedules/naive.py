"""``naive``: one batch in the pipeline at a time (serves every wiring).

Activations go up; then the backward messages (the gradient, broadcasts, or an empty "done"
message) come down stage by stage before anyone starts the next batch. For ``output_error``
wirings (DFA) the top stage sends its broadcast straight to every lower stage, which then
updates without waiting for any backward pass in between.
"""

from __future__ import annotations

import torch

from beyond_backprop.engines.schedules.base import Schedule
from beyond_backprop.engines.schedules.registry import register_schedule
from beyond_backprop.engines.stage import Terms
from beyond_backprop.rules.base import Batch


@register_schedule("naive", staged=True)
class Naive(Schedule):
    """Lockstep: forward up, backward messages down, then the next batch."""

    def run(self, batch: Batch, step: int, epoch: int) -> Terms:
        stage = self.stage
        if not stage.runs:
            return {}
        pairs = stage.forward(batch.x, batch)
        broadcast_from_top = stage.rule.wiring.backward == "output_error"
        inbox: dict[str, torch.Tensor] = {}
        if stage.learns and not stage.top:
            source = stage.top_rank if broadcast_from_top else stage.rank + 1
            inbox = stage.channel.recv_named(source)
        terms, down = stage.backward(pairs, batch, step, epoch, inbox)
        if broadcast_from_top:
            if stage.top:  # straight to every lower stage: none waits for another's backward
                for rank in range(stage.rank):
                    if stage.partition[rank].stop > stage.active.start:
                        stage.channel.send_named(down, rank)
        elif stage.below_learns:
            stage.channel.send_named(down, stage.rank - 1)
        return terms
