"""The schedule registry: ``engine.schedule`` names, for one process and for several stages.

One name may have a one-process and a staged form (``async``: DGL's replay buffers, simulated
in one process or across processes); the valid names depend on ``engine.stages``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from beyond_backprop.config.engine import EngineConfig
from beyond_backprop.errors import did_you_mean
from beyond_backprop.rules.base import Wiring

T = TypeVar("T")

_REGISTERED: dict[tuple[str, bool], Any] = {}
"""(name, staged) -> the class (a ``Schedule`` when staged, a one-process step otherwise)."""


def register_schedule(name: str, *, staged: bool) -> Callable[[T], T]:
    """Register a class as ``engine.schedule: name`` for staged (or one-process) runs."""

    def register(cls: T) -> T:
        if (name, staged) in _REGISTERED:
            raise ValueError(f"schedule {name!r} (staged={staged}) is registered twice")
        _REGISTERED[(name, staged)] = cls
        return cls

    return register


def schedule_names(staged: bool) -> list[str]:
    """The valid ``engine.schedule`` values for one process (False) or several stages."""
    return sorted(name for name, s in _REGISTERED if s == staged)


def schedule_class(name: str, staged: bool) -> Any:
    """The class registered as ``name`` (check it with ``check_schedule`` first)."""
    return _REGISTERED[(name, staged)]


def check_schedule(
    engine: EngineConfig, rule_name: str, wiring: Wiring, rules: dict[str, Wiring]
) -> str | None:
    """Why ``engine.schedule`` cannot train ``rule_name`` on ``engine.stages`` stages (naming
    the valid schedules and the rules it serves), or None when it can."""
    name, staged = engine.schedule, engine.staged
    valid = schedule_names(staged)
    where = f"{engine.stages} stages" if staged else "one process (engine.stages: 1)"
    if (name, staged) not in _REGISTERED:
        other = schedule_names(not staged)
        hint = did_you_mean(name, valid)
        also = f" ({name!r} needs engine.stages >= 2)" if name in other and not staged else ""
        return (
            f"engine.schedule: unknown schedule {name!r} for {where}{hint}{also}; "
            f"valid: {', '.join(valid)}"
        )
    cls = schedule_class(name, staged)
    if cls.serves(wiring):
        return None
    able = sorted(rule for rule, w in rules.items() if cls.serves(w))
    usable = [s for s in valid if schedule_class(s, staged).serves(wiring)]
    return (
        f"engine.schedule: {name!r} serves {cls.serves_what}, but rule {rule_name!r} has "
        f"wiring backward {wiring.backward!r} (stale_ok {wiring.stale_ok}); rules it serves: "
        f"{', '.join(able) or 'none'}; schedules for {rule_name!r}: {', '.join(usable)} "
        f"(on {where})"
    )
