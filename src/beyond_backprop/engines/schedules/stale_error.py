"""``stale_error``: for ``output_error`` wirings (DFA, arXiv 1609.01596): no stage waits for the
error of the current step.

DFA sends every hidden block the output error e through a fixed matrix, so a block needs
nothing from the blocks between it and the top: only e. Under ``naive`` a lower stage still
waits every step for the e of the batch it has just sent up. Here a stage below the top runs
its blocks forward on batch t, sends the output up and goes on, keeping the graph; it learns
at step t from the e of batch t - s (s = ``engine.staleness``; by default the number of
stages above stage 0, so that stage 0 does not wait for the K - 1 forward passes that e
needs), which the top stage broadcast at step t - s, back-propagated through the graph of
step t - s (``stale``: the graphs in flight, the weights they keep and the checkpoints). So
no block runs twice. The top stage computes e of the current batch, learns from it at once
and sends it straight to every lower stage, as under ``naive``. The staleness is logged as
the term ``staleness`` of each stage's top block (``stale``).

Deviations: Nøkland's updates use the error of the same batch; here a lower block learns,
in step t's update, from the error of batch t - s through its forward pass of that batch
(the weights of step t - s), as in pipeline-parallel training with stale weights. With s = 0
this is ``naive`` exactly (tested bitwise); the rule's objective for a late block sees the
batch's inputs and targets, not its extra views.
"""

from __future__ import annotations

from beyond_backprop.engines.schedules.registry import register_schedule
from beyond_backprop.engines.schedules.stale import StaleSignals
from beyond_backprop.engines.stage import Pairs, Terms
from beyond_backprop.engines.step import Late
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

    def default_staleness(self) -> int:
        # the error of batch t reaches stage 0 after the forward passes of the stages above
        return self.stage.world_size - 1

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
        due = self.forward_and_keep(batch, step, epoch)
        if not stage.learns:
            return {}
        terms = {} if due is None else self._learn(*due)
        return self.logged(terms, self.staleness)

    def _learn(self, late: Late, pairs: Pairs) -> Terms:
        """The stage's learning blocks learn from step ``late.step``'s error, through that
        step's graph."""
        batch = Batch(late.x, late.y)
        terms, _ = self.stage.backward(pairs, batch, late.step, late.epoch, late.inbox)
        return terms
