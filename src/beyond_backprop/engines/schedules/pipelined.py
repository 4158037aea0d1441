"""``pipelined``: for forward-only wirings (backward ``none``: greedy, DGL, GIM, per-block
SimCLR, LoCo without overlap).

A stage sends its output up and goes on with its own update and the next batch without
waiting for any stage above, so stage k works on batch t while stage k+1 works on batch t-1.
Each block's update depends only on its input and its own state, and the input of block k+1
for batch t is computed by block k's parameters before block k's update of step t, as in the
one-process loop: the parameters come out bitwise the same (same seed, pinned threads, no
random layers, whose draws would come from a different generator per rank).
"""

from __future__ import annotations

from beyond_backprop.engines.schedules.base import Schedule
from beyond_backprop.engines.schedules.registry import register_schedule
from beyond_backprop.engines.stage import Terms
from beyond_backprop.rules.base import Batch, Wiring


@register_schedule("pipelined", staged=True)
class Pipelined(Schedule):
    """Send up and go on: no stage waits for a stage above it."""

    serves_what = "wirings with backward 'none'"

    @classmethod
    def serves(cls, wiring: Wiring) -> bool:
        return wiring.backward == "none"

    def run(self, batch: Batch, step: int, epoch: int) -> Terms:
        stage = self.stage
        if not stage.runs:
            return {}
        pairs = stage.forward(batch.x, batch)
        terms, _ = stage.backward(pairs, batch, step, epoch, {})
        return terms
