"""The parameter part of every step's checkpoint state: model, local modules, optimizers."""

from __future__ import annotations

from typing import Any

from beyond_backprop.engines.optim import BlockOptimizers
from beyond_backprop.experiment import Experiment


def parameter_state(experiment: Experiment, optimizers: BlockOptimizers) -> dict[str, Any]:
    """The stack's, the local modules' and the optimizers' states (weights_only-safe)."""
    return {
        "model": experiment.stack.state_dict(),
        "locals": experiment.locals_container.state_dict(),
        "optimizers": optimizers.state_dict(),
    }


def load_parameter_state(
    experiment: Experiment, optimizers: BlockOptimizers, state: dict[str, Any]
) -> None:
    """Restore what ``parameter_state`` saved."""
    experiment.stack.load_state_dict(state["model"])
    experiment.locals_container.load_state_dict(state["locals"])
    optimizers.load_state_dict(state["optimizers"])
