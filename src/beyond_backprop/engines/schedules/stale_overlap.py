"""``stale_overlap``: for ``overlap`` wirings (LoCo, arXiv 2008.01342 Sec. 3.2; overlapping local
updates, arXiv 2012.03837 Sec. 3): no stage waits for the gradient from the stage above.

Under the overlap wiring the top block of a stage learns from its own local loss and from the
loss of the block above, whose gradient comes down one block and stops there
(``engines/step.py``). Under ``naive`` a stage waits every step for that gradient before it
updates. Here every stage runs batch t forward and back-propagates its blocks' own losses at
once, sends what its lowest block back-propagated down and goes on, keeping its top block's
graph; that block learns from the gradient of batch t - s (s = ``engine.staleness``, by
default 1), which the stage above sent at step t - s, back-propagated through the graph of
step t - s (``stale``: the graphs in flight, the weights they keep and the checkpoints), in step t's
optimizer step; that gradient reaches the block's parameters only, never its input, and no
block runs twice. The staleness is logged as the term ``staleness`` of each stage's top
block (0 on the top stage, which nothing overlaps).

Deviations: in the papers the overlapping gradient is that of the same batch; here it is
that of batch t - s, through the block's forward pass of that batch (the weights of step
t - s), like DNI's late targets under ``decoupled``. With s = 0 this is ``naive`` exactly
(tested bitwise). A stage's top block must learn from its own loss
at once: a stage boundary inside a chunk of several blocks (back-propagation within the
chunk) is refused.
"""

from __future__ import annotations

import torch
from torch import nn

from beyond_backprop.engines.device import current_loss_scale
from beyond_backprop.engines.schedules.registry import register_schedule
from beyond_backprop.engines.schedules.stale import StaleSignals, weights_kept
from beyond_backprop.engines.stage import Pairs, Terms
from beyond_backprop.engines.step import Late
from beyond_backprop.errors import WiringError
from beyond_backprop.rules.base import Batch, Wiring


@register_schedule("stale_overlap", staged=True)
class StaleOverlap(StaleSignals):
    """A stage's top block learns from the overlap gradient ``engine.staleness`` steps late."""

    serves_what = "wirings with backward 'overlap'"

    @classmethod
    def serves(cls, wiring: Wiring) -> bool:
        return wiring.backward == "overlap"

    @property
    def source(self) -> int:
        return self.stage.rank + 1  # the overlap gradient comes from the stage above

    def default_staleness(self) -> int:
        return 1  # the gradient comes from the stage just above

    def run(self, batch: Batch, step: int, epoch: int) -> Terms:
        stage = self.stage
        if not stage.runs:
            return {}
        keeps = stage.learns and not stage.top
        top = stage.blocks.stop - 1
        with weights_kept([stage.stack.blocks[top]] if keeps else []) as kept:
            pairs = stage.forward(batch.x, batch)
        terms, down = self._own_losses(pairs, batch, step, epoch, retain_graph=keeps)
        if stage.below_learns:
            stage.channel.send_named(down, stage.rank - 1)
        if not keeps:
            return self.logged(terms, 0) if stage.learns else terms
        self.keep(pairs[-1:], top, batch, step, epoch, kept)
        due = self.due()
        if due is not None:
            self._learn(*due)
        return self.logged(terms, self.staleness)

    def late_modules(self, late: Late) -> list[nn.Module]:
        return [self.stage.stack.blocks[late.block]]

    def _own_losses(
        self, pairs: Pairs, batch: Batch, step: int, epoch: int, retain_graph: bool
    ) -> tuple[Terms, dict[str, torch.Tensor]]:
        """Every learning block's own objective, with nothing from above (it comes late)."""
        try:
            return self.stage.backward(pairs, batch, step, epoch, {}, retain_graph=retain_graph)
        except KeyError as missing:
            if missing.args != ("grad",):
                raise
            raise WiringError(
                f"engine.schedule: 'stale_overlap' needs the top block of every stage to learn "
                f"from its own loss, but a block of stage {self.stage.rank} asks for the "
                "gradient from the block above in the same step (a stage boundary inside a "
                "chunk of blocks?): put engine.boundaries at chunk boundaries, or use naive"
            ) from None

    def _learn(self, late: Late, pairs: Pairs) -> None:
        """The top block accumulates the gradient the stage above sent for step ``late.step``
        into its parameters, through that step's graph (not into its input)."""
        k = late.block
        ((_, h_out),) = pairs
        grad = late.inbox["grad"]
        scale = current_loss_scale(k)  # fp16: block k's losses are scaled by its scale
        params = list(self.stage.stack.blocks[k].parameters())
        torch.autograd.backward(h_out, grad if scale == 1.0 else grad * scale, inputs=params)
