"""What every step object builds and saves alike: the block optimizers, and the parameter part
of its checkpoint state (model, local modules, optimizers)."""

from __future__ import annotations

from typing import Any

from beyond_backprop.engines.device import Precision
from beyond_backprop.engines.optim import BlockOptimizers
from beyond_backprop.experiment import Experiment


def block_optimizers(experiment: Experiment) -> BlockOptimizers:
    """One optimizer per block (with a gradient scaler each under fp16)."""
    precision = Precision.of(experiment.config.engine, experiment.device)
    return BlockOptimizers(
        map(experiment.block_parameters, range(len(experiment.stack))),
        experiment.config.optim,
        scaled_on=precision.device_type if precision.scaled else None,
    )


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
