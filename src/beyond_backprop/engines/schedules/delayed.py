"""``delayed``: for ``delayed_gradient`` wirings that learn from the true gradient, late (DDG,
arXiv 1804.10574): no stage waits for a backward pass above it.

Every step runs the forward pass up the stages as usual (forward locking stays). The top
stage learns from the current batch at once and sends its input gradient down; stage k of K
learns at step t from the gradient of step t - d, d = K - k - 1, which the stage above sent
at step t - 1, back-propagated through its blocks re-run on the input it kept for step t - d
(with the current weights), and sends the result down in turn. So stage k keeps the inputs of
its d steps in flight (``in_flight``: checkpoints hold them and the gradient already sent
for the oldest). The staleness d is logged as the term ``staleness`` of the stage's top block;
with one stage (d = 0) this is the lockstep ``naive`` schedule.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

from beyond_backprop.engines.schedules.base import Schedule
from beyond_backprop.engines.schedules.registry import register_schedule
from beyond_backprop.engines.stage import Terms
from beyond_backprop.engines.step import Late, forward_blocks
from beyond_backprop.rules.base import Batch, Wiring


@register_schedule("delayed", staged=True)
class Delayed(Schedule):
    """Backward unlocking by delayed true gradients (stage k of K: K - k - 1 steps late)."""

    serves_what = "wirings with backward 'delayed_gradient'"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight: deque[Late] = deque()
        """The steps this stage has run forward but not learned from yet, oldest first."""

    @classmethod
    def serves(cls, wiring: Wiring) -> bool:
        return wiring.backward == "delayed_gradient"

    @property
    def delay(self) -> int:
        """How many steps late this stage learns: one per stage above it."""
        return self.stage.top_rank - self.stage.rank

    def run(self, batch: Batch, step: int, epoch: int) -> Terms:
        stage = self.stage
        if not stage.runs:
            return {}
        if stage.top:
            pairs = stage.forward(batch.x, batch)
            terms, down = stage.backward(pairs, batch, step, epoch, {})
            return self._sent(terms, down, 0)
        x = batch.x if stage.first else stage.channel.recv_required(stage.rank - 1)
        with torch.no_grad():  # the graph is rebuilt when the gradient comes (see _learn)
            out = stage.stack.forward_range(x, stage.blocks.start, stage.blocks.stop)
        stage.channel.send(out, stage.rank + 1)
        empty = x.new_empty(0)
        self.in_flight.append(Late(stage.blocks.start, step, epoch, x, empty, batch.x, batch.y))
        if len(self.in_flight) <= self.delay:
            return {}  # the first steps of training: no gradient has come down yet
        self._await_oldest()
        return self._learn(self.in_flight.popleft(), step)

    def _learn(self, late: Late, step: int) -> Terms:
        """Back-propagate the gradient that came for step ``late.step`` through the stage's
        blocks re-run on that step's input, with the current weights."""
        stage = self.stage
        modules = list(stage.stack.blocks[stage.blocks.start : stage.blocks.stop])
        # the re-run is not a new batch: BatchNorm's running statistics keep the real ones
        # (restored after the backward pass, which may still read them)
        buffers = [b for m in modules for b in m.buffers()]
        saved = [b.clone() for b in buffers]
        pairs = forward_blocks(modules, stage.blocks.start, late.x_in, needs_input_grad=True)
        batch = Batch(late.x, late.y)
        terms, down = stage.backward(pairs, batch, late.step, late.epoch, late.inbox)
        with torch.no_grad():
            for buffer, value in zip(buffers, saved, strict=True):
                buffer.copy_(value)
        return self._sent(terms, down, step - late.step)

    def _sent(self, terms: Terms, down: dict[str, torch.Tensor], staleness: int) -> Terms:
        """Send ``down`` to the stage below (if it learns) and log the staleness."""
        stage = self.stage
        if stage.below_learns:
            stage.channel.send_named(down, stage.rank - 1)
        terms[(stage.blocks.stop - 1, "staleness")] = float(staleness)
        return terms

    def _await_oldest(self) -> None:
        """Receive the gradient for the oldest step in flight once the stage above has sent it
        (it did at the step after that one's: when ``delay`` steps are in flight)."""
        if len(self.in_flight) >= self.delay > 0 and "grad" not in self.in_flight[0].inbox:
            inbox = self.stage.channel.recv_named(self.stage.rank + 1)
            self.in_flight[0].inbox.update(inbox)

    def settle(self) -> None:
        # the gradient the stage above sent this step is saved with the step it belongs to
        self._await_oldest()
        super().settle()

    def close(self) -> None:
        self._await_oldest()  # training is over: the steps in flight are never learned from
        self.in_flight.clear()
        super().close()

    def state_dict(self) -> dict[str, Any]:
        return {"in_flight": [late.state_dict() for late in self.in_flight]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.in_flight = deque(Late(**late) for late in state.get("in_flight", []))
