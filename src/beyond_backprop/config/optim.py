"""The optimizer section of an experiment config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class OptimConfig:
    """The optimizer every block (and its local modules) gets, and its schedule."""

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    """Optimizer: SGD with momentum, Adam or AdamW."""
    lr: float = 0.05
    """Peak learning rate."""
    momentum: float = 0.9
    """SGD momentum."""
    nesterov: bool = False
    """Nesterov momentum for SGD."""
    weight_decay: float = 0.0
    """L2 penalty (decoupled for AdamW)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's moment decay rates."""
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    """``constant``; ``cosine`` decay to 0 over training; ``step``: times ``gamma`` at each
    milestone."""
    warmup_steps: int = 0
    """Linear warm-up from 0 over this many steps."""
    milestones: tuple[float, ...] = (0.5, 0.75)
    """For ``step``: fractions of training at which the rate is multiplied by ``gamma``."""
    gamma: float = 0.1
    """For ``step``: the factor at each milestone."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        if not self.lr > 0:
            found.append(("lr", f"{self.lr} is invalid: must be > 0"))
        if not 0 <= self.momentum < 1:
            found.append(("momentum", f"{self.momentum} is invalid: must be in [0, 1)"))
        if any(not 0 <= b < 1 for b in self.betas):
            found.append(("betas", f"{list(self.betas)} is invalid: each must be in [0, 1)"))
        if not self.gamma > 0:
            found.append(("gamma", f"{self.gamma} is invalid: must be > 0"))
        if self.weight_decay < 0:
            found.append(("weight_decay", f"{self.weight_decay} is invalid: must be >= 0"))
        if self.warmup_steps < 0:
            found.append(("warmup_steps", f"{self.warmup_steps} is invalid: must be >= 0"))
        if any(not 0 < m < 1 for m in self.milestones):
            found.append(("milestones", f"{list(self.milestones)} is invalid: each in (0, 1)"))
        if self.nesterov and self.name == "sgd" and self.momentum == 0:
            found.append(("nesterov", "true needs momentum > 0"))
        return found
