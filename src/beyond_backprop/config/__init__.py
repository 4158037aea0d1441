"""Experiment configuration: dataclass schema, YAML presets, overrides, validation."""

from beyond_backprop.config.build import build_experiment_config, config_to_dict
from beyond_backprop.config.load import apply_override, dump_config, load_config
from beyond_backprop.config.schema import (
    ExperimentConfig,
    LogConfig,
    ModelSection,
    RuleSection,
)

__all__ = [
    "ExperimentConfig",
    "LogConfig",
    "ModelSection",
    "RuleSection",
    "apply_override",
    "build_experiment_config",
    "config_to_dict",
    "dump_config",
    "load_config",
]
