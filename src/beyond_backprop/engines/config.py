"""The engine and training-loop sections of an experiment config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class EngineConfig:
    """Where and how blocks run."""

    name: Literal["local"] = "local"
    """``local``: every block in this process, in order."""
    threads: int | None = None
    """``torch.set_num_threads`` for the run; None keeps torch's default."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        if self.threads is not None and self.threads < 1:
            return [("threads", f"{self.threads} is invalid: must be >= 1 or null")]
        return []


@dataclass(frozen=True)
class TrainConfig:
    """How long to train, and how often to evaluate, log and checkpoint."""

    epochs: int = 10
    """Passes over the training set (a rule may stretch this, e.g. greedy's epochs per block)."""
    max_steps: int | None = None
    """Stop after this many steps in all (smoke runs); None trains every epoch."""
    eval_every: int = 1
    """Evaluate on the evaluation split every this many epochs (and always at the end)."""
    log_every: int = 50
    """Log the mean training loss terms every this many steps."""
    checkpoint_every: int | None = None
    """Also checkpoint every this many steps; checkpoints are always written at epoch ends."""
    keep_checkpoints: int = 2
    """How many recent checkpoints to keep."""
    diagnostics_every: int | None = None
    """Log the rule's diagnostics (split ``diag``) every this many steps; None: never."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        for name in ("epochs", "eval_every", "log_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                found.append((name, f"{getattr(self, name)} is invalid: must be >= 1"))
        for name in ("max_steps", "checkpoint_every", "diagnostics_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                found.append((name, f"{value} is invalid: must be >= 1 or null"))
        return found
