"""``decoupled``: for ``delayed_gradient`` wirings (DNI): update now from the rule's own
gradient estimate, learn from the real one a step later.

A stage's top block learns at once from the rule's estimate of its output gradient (the
synthetic gradient) and the stage sends what its lowest block back-propagated down, without
waiting; the true target of step t comes from the stage above while this stage runs step
t+1, and the rule learns from it then (``late_terms``: DNI's synthesizer regression), in the
same optimizer step as step t+1's update. So no stage ever waits for a backward pass above it
(update unlocking); the synthesizer learns one step late, from its parameters at that time.
Under a ``synthetic`` forward wiring (DNI's synthetic inputs) every stage but the first also
learns before its input arrives (forward unlocking): its blocks run on the rule's synthetic
input; after the update the stage receives the real input, passes the real output up, and
the rule learns from the real input at the next step (``late_terms``: the input
synthesizer's regression).
"""

from __future__ import annotations

from typing import Any

import torch

from beyond_backprop.engines.schedules.base import Schedule
from beyond_backprop.engines.schedules.registry import register_schedule
from beyond_backprop.engines.stage import Pairs, Terms
from beyond_backprop.engines.step import Late, forward_blocks, learn_late
from beyond_backprop.errors import WiringError
from beyond_backprop.rules.base import Batch, Wiring


@register_schedule("decoupled", staged=True)
class Decoupled(Schedule):
    """Update unlocking (and, under a ``synthetic`` forward, forward unlocking)."""

    serves_what = "wirings with backward 'delayed_gradient' that estimate the gradient"
    late: Late | None = None
    """The update whose gradient from above is still to come."""
    late_input: Late | None = None
    """Forward unlocking: the update made on a synthetic input, with the real input that
    came after it (learned from at the next step)."""

    @classmethod
    def serves(cls, wiring: Wiring) -> bool:
        return wiring.backward == "delayed_gradient" and wiring.estimates_gradient

    @property
    def unlocked(self) -> bool:
        """Forward unlocking: a stage above the first under a ``synthetic`` forward wiring
        learns from the rule's synthetic input instead of waiting for the real one."""
        return not self.stage.first and self.stage.rule.wiring.forward == "synthetic"

    def run(self, batch: Batch, step: int, epoch: int) -> Terms:
        stage = self.stage
        if not stage.runs:
            return {}
        unlocked = self.unlocked
        pairs = self._forward_synthetic(batch) if unlocked else stage.forward(batch.x, batch)
        terms, down = stage.backward(pairs, batch, step, epoch, {}, synthetic_first=unlocked)
        if stage.below_learns:
            stage.channel.send_named(down, stage.rank - 1)
        terms.update(self._learn_late())  # step t-1's target, sent while this stage ran step t
        if stage.learns and not stage.top:
            self.late = Late.of(stage.blocks.stop - 1, pairs[-1], batch, step, epoch)
        return terms

    def after_update(self, batch: Batch, step: int, epoch: int) -> None:
        """After a forward-unlocked update: receive the real input, keep it for the rule to
        learn from (``late_terms`` at the next step), and pass the real output up."""
        if not (self.unlocked and self.stage.runs):
            return
        stage = self.stage
        x = stage.channel.recv_required(stage.rank - 1)
        start = stage.blocks.start
        with torch.no_grad():
            out = stage.stack.forward_range(x, start, stage.blocks.stop)
        empty = x.new_empty(0)
        self.late_input = Late(start, step, epoch, x, empty, batch.x, batch.y, {"input": x})
        if not stage.top:
            stage.channel.send(out, stage.rank + 1)

    def _forward_synthetic(self, batch: Batch) -> Pairs:
        """Run the stage's blocks for learning on the rule's synthetic input (nothing is
        received or sent: the real input comes after the update, ``after_update``)."""
        stage = self.stage
        start = stage.blocks.start
        x = stage.rule.synthetic_input(start, stage.locals[start], batch)
        if x is None:
            raise WiringError(f"the rule gives block {start} no synthetic input to start from")
        modules = list(stage.stack.blocks[start : stage.blocks.stop])
        return forward_blocks(modules, start, x.detach(), stage.rule.wiring.needs_input_grad)

    def _await_late(self) -> None:
        """Receive the gradient the pending late update waits for (the stage above sent it
        after its step; keep it, to learn from at the next step)."""
        if self.late is not None and "grad" not in self.late.inbox:
            self.late.inbox["grad"] = self.stage.channel.recv_named(self.stage.rank + 1)["grad"]

    def _learn_late(self) -> Terms:
        """The rule's late terms for the pending updates, once their signals are here."""
        self._await_late()
        terms: Terms = {}
        for late in (self.late, self.late_input):
            if late is not None:
                stage = self.stage
                terms.update(learn_late(stage.rule, stage.locals, late, len(stage.stack)))
        self.late = self.late_input = None
        return terms

    def settle(self) -> None:
        # a pending late update is saved (or evaluated) with the gradient it needs, which is
        # in the channel before any parameter sent for the evaluation
        self._await_late()
        super().settle()

    def close(self) -> None:
        self._await_late()  # the last step's target: training is over, nothing learns it
        self.late = self.late_input = None
        super().close()

    def state_dict(self) -> dict[str, Any]:
        pending = {"late": self.late, "late_input": self.late_input}
        return {key: late.state_dict() if late else None for key, late in pending.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = next(self.stage.stack.parameters()).device  # checkpoints load on the CPU
        late, late_input = state.get("late"), state.get("late_input")
        self.late = Late.on(device, late) if late else None
        self.late_input = Late.on(device, late_input) if late_input else None
