"""Learning rules: one file per paper, registered by name.

Every module in this package is imported here, so a new rule is one new file.
"""

import importlib
import pkgutil

from beyond_backprop.rules.base import (
    Batch,
    BlockContext,
    LearningRule,
    LocalLoss,
    Objective,
    OutputGradient,
    Wiring,
)
from beyond_backprop.rules.registry import RULES, default_wirings, register_rule

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "RULES",
    "Batch",
    "BlockContext",
    "LearningRule",
    "LocalLoss",
    "Objective",
    "OutputGradient",
    "Wiring",
    "default_wirings",
    "register_rule",
]
