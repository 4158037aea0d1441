"""The step protocol: what the ``Trainer`` loop drives, one process or one stage of many.

A step object does one training step of its blocks and owns what a step needs besides the
loop: the per-block optimizers, a schedule's state, the messages to other stages. The loop
(epochs, learning rate, evaluation and checkpoint cadence, stop, summary) is the Trainer's,
the same for every step object.
"""

from __future__ import annotations

from typing import Any, Protocol

from beyond_backprop.engines.optim import BlockOptimizers
from beyond_backprop.rules.base import Batch

Terms = dict[tuple[int, str], float]


class Step(Protocol):
    """One process's part of every training step."""

    figures: dict[tuple[int | None, str], float]
    """The rule's diagnostics computed in the last step (empty when none were due)."""
    optimizers: BlockOptimizers
    """The block optimizers (and, under fp16, their gradient scalers)."""

    def step(self, batch: Batch, step: int, epoch: int, lr: float) -> Terms:
        """Train this process's blocks on ``batch``; returns the loss terms per block."""
        ...

    def prepare_evaluation(self) -> bool:
        """Reach a step boundary everywhere and bring the parameters to where the evaluation
        runs; True in the process that evaluates."""
        ...

    def after_evaluation(self) -> None:
        """Resume together after an evaluation."""
        ...

    def settle(self) -> None:
        """Before a checkpoint: finish what is in flight, so the state is a step boundary's."""
        ...

    def agree_stop(self, requested: bool, step: int) -> bool:
        """Whether to stop now, agreed by every process (``requested``: this one's wish)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Parameters, optimizer states and the step's own state."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved."""
        ...

    def close(self) -> None:
        """After the last step."""
        ...

    def summary(self) -> dict[str, Any]:
        """What the run summary says about this step (stage layout, schedule)."""
        ...
