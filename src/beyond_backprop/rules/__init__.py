"""Learning rules: one file per paper, registered by name."""

from beyond_backprop.rules import backprop
from beyond_backprop.rules.base import (
    Batch,
    BlockContext,
    LearningRule,
    LocalLoss,
    Objective,
    OutputGradient,
    Wiring,
)
from beyond_backprop.rules.registry import RULES, register_rule

__all__ = [
    "RULES",
    "Batch",
    "BlockContext",
    "LearningRule",
    "LocalLoss",
    "Objective",
    "OutputGradient",
    "Wiring",
    "backprop",
    "register_rule",
]
