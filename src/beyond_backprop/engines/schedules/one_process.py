"""What the one-process steps share: every block here, evaluation here, nothing to agree on."""

from __future__ import annotations

from typing import Any

from beyond_backprop.engines.state import (
    block_optimizers,
    load_parameter_state,
    parameter_state,
)
from beyond_backprop.experiment import Experiment


class OneProcessStep:
    """The base of the one-process steps (``engine.stages: 1``); subclasses add ``step``."""

    def __init__(self, experiment: Experiment) -> None:
        self.exp = experiment
        self.num_blocks = len(experiment.stack)
        self.optimizers = block_optimizers(experiment)
        self.figures: dict[tuple[int | None, str], float] = {}

    def prepare_evaluation(self) -> bool:
        return True

    def after_evaluation(self) -> None:
        """Nothing to wait for."""

    def settle(self) -> None:
        """Nothing is in flight."""

    def agree_stop(self, requested: bool, step: int) -> bool:
        return requested

    def state_dict(self) -> dict[str, Any]:
        return parameter_state(self.exp, self.optimizers)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parameter_state(self.exp, self.optimizers, state)

    def close(self) -> None:
        """Nothing to close."""

    def summary(self) -> dict[str, Any]:
        return {}
