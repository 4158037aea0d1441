"""beyond-backprop: train neural networks without end-to-end back-propagation, block by block
and layer-parallel.

The public API (each name is imported on first use, so ``import beyond_backprop`` stays cheap):

- ``train(config, *, stack=None, rule=None, overrides=())``: one run, like ``bbp train``;
  returns its ``RunResult`` (``run_dir``, ``summary``).
- ``BlockStack`` (``BlockStack.from_sequential``): your own network as a stack of blocks.
- ``build_experiment(config, stack=...)``: the data, stack, rule and locals of a config.
- ``load_config``, ``ExperimentConfig``: presets and the schema.
- ``load_trained_run(run_dir)``: a finished run with its latest weights.
- ``register_rule``, ``register_architecture``, ``register_dataset``, ``register_schedule``,
  ``LearningRule``, ``LocalLoss``, ``OutputGradient``, ``Wiring``: extend the library
  (docs/extending.md); ``load_plugins``: import plugin modules as ``--plugin`` does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "train": "beyond_backprop.run.api",
    "RunResult": "beyond_backprop.run.session",
    "BlockStack": "beyond_backprop.models.stack",
    "build_experiment": "beyond_backprop.experiment",
    "Experiment": "beyond_backprop.experiment",
    "ExperimentConfig": "beyond_backprop.config.schema",
    "load_config": "beyond_backprop.config.load",
    "load_trained_run": "beyond_backprop.eval.trained",
    "load_plugins": "beyond_backprop.run.plugins",
    "register_rule": "beyond_backprop.rules.registry",
    "register_architecture": "beyond_backprop.models.registry",
    "register_dataset": "beyond_backprop.data.registry",
    "register_schedule": "beyond_backprop.engines.schedules.registry",
    "LearningRule": "beyond_backprop.rules.base",
    "LocalLoss": "beyond_backprop.rules.base",
    "OutputGradient": "beyond_backprop.rules.base",
    "Wiring": "beyond_backprop.rules.base",
}

__all__ = [
    "BlockStack",
    "Experiment",
    "ExperimentConfig",
    "LearningRule",
    "LocalLoss",
    "OutputGradient",
    "RunResult",
    "Wiring",
    "__version__",
    "build_experiment",
    "load_config",
    "load_plugins",
    "load_trained_run",
    "register_architecture",
    "register_dataset",
    "register_rule",
    "register_schedule",
    "train",
]

if TYPE_CHECKING:
    from beyond_backprop.config.load import load_config
    from beyond_backprop.config.schema import ExperimentConfig
    from beyond_backprop.data.registry import register_dataset
    from beyond_backprop.engines.schedules.registry import register_schedule
    from beyond_backprop.eval.trained import load_trained_run
    from beyond_backprop.experiment import Experiment, build_experiment
    from beyond_backprop.models.registry import register_architecture
    from beyond_backprop.models.stack import BlockStack
    from beyond_backprop.rules.base import LearningRule, LocalLoss, OutputGradient, Wiring
    from beyond_backprop.rules.registry import register_rule
    from beyond_backprop.run.api import train
    from beyond_backprop.run.plugins import load_plugins
    from beyond_backprop.run.session import RunResult


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'beyond_backprop' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
