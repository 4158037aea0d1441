"""The rule registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from beyond_backprop.registry import Registry

if TYPE_CHECKING:
    from beyond_backprop.rules.base import LearningRule, Wiring

RULES: Registry[type[LearningRule]] = Registry("rule")
register_rule = RULES.register


def default_wirings() -> dict[str, Wiring]:
    """Each registered rule's wiring with its default options (the rule built from its
    ``Config()``), by name: what engines list as the rules a schedule serves."""
    return {name: RULES.get(name)(RULES.get(name).Config()).wiring for name in RULES.names()}
