"""``delayed_stashed``: ``delayed`` (DDG, arXiv 1804.10574, Alg. 1) without the re-run: the
late gradient goes through the graph its step recorded, with that step's weights stashed, as
PipeDream's weight stashing does (arXiv 1806.03377, Sec. 3.3).

As under ``delayed``, the forward pass goes up the stages every step, the top stage learns
from the current batch at once and sends its input gradient down, and stage k of K learns at
step t from the gradient of step t - d, d = K - k - 1, which the stage above sent at step
t - 1, and sends the result down in turn. Under ``delayed`` the stage re-runs its blocks on
the input it kept for step t - d to back-propagate that gradient with the current weights;
here it keeps step t - d's graph instead (``stale``: the graphs in flight, the weights they
keep and the checkpoints), so its blocks run forward once per step, not twice. The staleness
d is logged as the term ``staleness`` of the stage's top block (0 on the top stage); it is
set by the stage's place (``engine.staleness`` must stay null).

Deviations: DDG takes the late gradient at the current weights (``delayed`` does); here it is
taken at the weights of the forward pass of its own step, t - d (the gradient of the loss
that step computed). The graphs in flight cost memory: d steps of each stage's activations.
"""

from __future__ import annotations

from typing import Any

from beyond_backprop.engines.schedules.registry import register_schedule
from beyond_backprop.engines.schedules.stale import StaleSignals
from beyond_backprop.engines.stage import Terms
from beyond_backprop.experiment import Experiment
from beyond_backprop.rules.base import Batch, Wiring


@register_schedule("delayed_stashed", staged=True)
class DelayedStashed(StaleSignals):
    """Backward unlocking by delayed true gradients through each step's own graph."""

    serves_what = "wirings with backward 'delayed_gradient'"

    @classmethod
    def serves(cls, wiring: Wiring) -> bool:
        return wiring.backward == "delayed_gradient"

    @classmethod
    def refuses(cls, experiment: Experiment) -> str | None:
        staleness = experiment.config.engine.staleness
        if staleness is None:
            return None
        return (
            f"engine.staleness: {staleness} is not used by 'delayed_stashed' (stage k of K is "
            "K - k - 1 steps late, set by its place); valid: null"
        )

    @property
    def source(self) -> int:
        return self.stage.rank + 1  # the gradient comes from the stage above

    def default_staleness(self) -> int:
        return self.stage.top_rank - self.stage.rank  # one step per stage above

    @property
    def unsent(self) -> int:
        # the stage above is one step less late: it has sent the oldest step's gradient only
        return max(0, self.staleness - 1)

    def run(self, batch: Batch, step: int, epoch: int) -> Terms:
        stage = self.stage
        if not stage.runs:
            return {}
        if stage.top:
            pairs = stage.forward(batch.x, batch)
            terms, down = stage.backward(pairs, batch, step, epoch, {})
            return self._sent(terms, down)
        due = self.forward_and_keep(batch, step, epoch)
        if not stage.learns:
            return {}
        if due is None:
            return self.logged({}, self.staleness)  # no gradient has come down yet
        late, graph = due
        terms, down = stage.backward(graph, Batch(late.x, late.y), late.step, late.epoch,
                                     late.inbox)  # fmt: skip
        return self._sent(terms, down)

    def _sent(self, terms: Terms, down: dict[str, Any]) -> Terms:
        """Send ``down`` to the stage below (if it learns) and log the staleness."""
        if self.stage.below_learns:
            self.stage.channel.send_named(down, self.stage.rank - 1)
        return self.logged(terms, self.staleness)
