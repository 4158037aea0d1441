"""``naive`` on one process: every active block, in order, on every batch (the exact
reference for every staged schedule)."""

from __future__ import annotations

from beyond_backprop.engines.protocol import Terms
from beyond_backprop.engines.schedules.one_process import OneProcessStep
from beyond_backprop.engines.schedules.registry import register_schedule
from beyond_backprop.engines.step import frozen_forward, train_blocks
from beyond_backprop.errors import WiringError
from beyond_backprop.rules.base import Batch, Wiring


@register_schedule("naive", staged=False)
class Sync(OneProcessStep):
    """Forward the active blocks, each block's objective top-down (``engines.step``), then
    step every active block's optimizer."""

    serves_what = "any wiring"

    @classmethod
    def serves(cls, wiring: Wiring) -> bool:
        return True

    def step(self, batch: Batch, step: int, epoch: int, lr: float) -> Terms:
        exp = self.exp
        active = list(exp.rule.active_blocks(epoch, self.num_blocks))
        first, last = active[0], active[-1]
        if active != list(range(first, last + 1)):
            raise WiringError(f"active blocks must be contiguous, got {active}")
        self.optimizers.prepare(active, lr)
        batch = exp.rule.transform_batch(batch, step)
        every = exp.config.train.diagnostics_every
        due = every is not None and step % every == 0
        # on the step's batch, before the update
        self.figures = exp.rule.diagnostics(exp.stack, exp.locals, batch, step) if due else {}
        x = frozen_forward(exp.stack, batch.x, 0, first)  # the blocks below the active ones
        blocks = list(exp.stack.blocks[first : last + 1])
        result = train_blocks(
            exp.rule, exp.locals, blocks, first, x, self.num_blocks, batch, step, epoch
        )
        self.optimizers.step(active)
        return result.terms
