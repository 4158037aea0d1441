"""The schedules: what one step does, on one process (``engine.stages: 1``) or on one stage of
many. Every module in this package is imported here, so a new schedule is one new file."""

import importlib
import pkgutil

from beyond_backprop.engines.schedules.check import check_experiment_schedule
from beyond_backprop.engines.schedules.registry import (
    check_schedule,
    register_schedule,
    schedule_class,
    schedule_names,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "check_experiment_schedule",
    "check_schedule",
    "register_schedule",
    "schedule_class",
    "schedule_names",
]
