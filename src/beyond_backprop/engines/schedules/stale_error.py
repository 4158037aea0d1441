"""``stale_error``: for ``output_error`` wirings (DFA, arXiv 1609.01596): no stage waits for the
error of the current step.

DFA sends every hidden block the output error e through a fixed matrix, so a block needs
nothing from the blocks between it and the top: only e. Under ``naive`` a lower stage still
waits every step for the e of the batch it has just sent up. Here a stage below the top runs
its blocks forward on batch t without a graph, sends the output up and goes on; it learns at
step t from the e of batch t - s (s = ``engine.staleness``), which the top stage broadcast at
step t - s, applied to its blocks re-run on the input it kept for step t - s (``stale``: the
re-run, the kept inputs and the checkpoints). The top stage computes e of the current batch,
learns from it at once and sends it straight to every lower stage, as under ``naive``. The
staleness is logged as the term ``staleness`` of each stage's top block (``stale``).

Deviations: Nøkland's updates use the error of the same batch; here a lower block learns
from the error of batch t - s on that batch's input, with the weights of step t (the
optimizer updated the weights in place, so the graph of step t - s cannot be reused). With
s = 0 this is ``naive`` exactly (tested bitwise); the rule's objective for a late block sees
the batch's inputs and targets, not its extra views.
"""

from __future__ import annotations

import torch

from beyond_backprop.engines.schedules.registry import register_schedule
from beyond_backprop.engines.schedules.stale import StaleSignals, kept_statistics
from beyond_backprop.engines.stage import Terms
from beyond_backprop.engines.step import Late, forward_blocks
from beyond_backprop.rules.base import Batch, Wiring


@register_schedule("stale_error", staged=True)
class StaleError(StaleSignals):
    """Lower stages learn from the output error ``engine.staleness`` steps late."""

    serves_what = "wirings with backward 'output_error'"

    @classmethod
    def serves(cls, wiring: Wiring) -> bool:
        return wiring.backward == "output_error"

    @property
    def source(self) -> int:
        return self.stage.top_rank  # the error is broadcast from the top

    def run(self, batch: Batch, step: int, epoch: int) -> Terms:
        stage = self.stage
        if not stage.runs:
            return {}
        if stage.top:
            pairs = stage.forward(batch.x, batch)
            terms, down = stage.backward(pairs, batch, step, epoch, {})
            for rank in range(stage.rank):  # straight to every lower stage that learns
                if stage.partition[rank].stop > stage.active.start:
                    stage.channel.send_named(down, rank)
            return self.logged(terms, 0)
        with torch.no_grad():  # the graph is rebuilt when the error comes (see _learn)
            pairs = stage.forward(batch.x, batch)
        if not stage.learns:
            return {}
        first = max(stage.blocks.start, stage.active.start)
        self.keep(first, pairs[0][0], batch, step, epoch)
        late = self.due()
        terms = {} if late is None else self._learn(late)
        return self.logged(terms, self.staleness)

    def _learn(self, late: Late) -> Terms:
        """The stage's learning blocks, re-run on step ``late.step``'s input with the current
        weights, learn from that step's error."""
        stage, first = self.stage, late.block
        modules = list(stage.stack.blocks[first : stage.blocks.stop])
        with kept_statistics(modules):
            pairs = forward_blocks(modules, first, late.x_in, stage.rule.wiring.needs_input_grad)
            batch = Batch(late.x, late.y)
            terms, _ = stage.backward(pairs, batch, late.step, late.epoch, late.inbox)
        return terms
