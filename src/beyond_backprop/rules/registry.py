"""The rule registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from beyond_backprop.registry import Registry

if TYPE_CHECKING:
    from beyond_backprop.rules.base import LearningRule

RULES: Registry[type[LearningRule]] = Registry("rule")
register_rule = RULES.register
