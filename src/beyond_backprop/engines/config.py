"""The engine and training-loop sections of an experiment config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from beyond_backprop.engines.replay import ReplayConfig


@dataclass(frozen=True)
class EngineConfig:
    """Where and how blocks run."""

    name: Literal["local", "staged"] = "local"
    """``local``: every block in this process, in order (``bbp train``). ``staged``: one
    process per stage (``bbp launch --nproc K``)."""
    threads: int | None = None
    """``torch.set_num_threads`` for the run (per process when staged); None: torch's default."""
    mode: Literal["sync", "async_sim"] = "sync"
    """Local: ``sync``, every block steps on every batch; ``async_sim``, DGL's asynchronous
    modules with replay buffers, simulated with a seeded update order (``stale_ok`` rules)."""
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    """The replay buffers: local ``async_sim`` mode and the staged ``async`` schedule."""
    stages: int = 2
    """Staged: the number of stages (one process each); must equal the launched processes."""
    schedule: Literal["naive", "pipelined", "gpipe", "async", "decoupled"] = "naive"
    """Staged: ``naive`` (one batch in flight), ``pipelined`` (forward-only wirings: stage k
    on batch t while stage k+1 is on t-1), ``gpipe`` (micro-batched back-propagation),
    ``async`` (``stale_ok`` rules: stages at their own pace, replay buffers per ``replay``),
    ``decoupled`` (``delayed_gradient`` rules, DNI: update now, learn from the real gradient
    one step later)."""
    microbatches: int = 4
    """Staged, ``gpipe``: micro-batches per batch."""
    boundaries: tuple[int, ...] | None = None
    """Staged: the first block of every stage after the first (e.g. [2] for 2 stages); None
    balances the stages by measured per-block cost."""
    timeout_s: float = 60.0
    """Staged: a stage waiting longer than this for another ends the run with an error."""
    stop_check_every: int = 20
    """Staged: every this many steps the stages agree whether a stop (SIGTERM) was asked."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        if self.threads is not None and self.threads < 1:
            found.append(("threads", f"{self.threads} is invalid: must be >= 1 or null"))
        for key in ("stages", "microbatches", "stop_check_every"):
            if getattr(self, key) < 1:
                found.append((key, f"{getattr(self, key)} is invalid: must be >= 1"))
        if self.timeout_s <= 0:
            found.append(("timeout_s", f"{self.timeout_s} is invalid: must be > 0"))
        if self.boundaries is not None and len(self.boundaries) != self.stages - 1:
            found.append(
                ("boundaries", f"{list(self.boundaries)} gives {len(self.boundaries) + 1} stages "
                 f"but engine.stages is {self.stages}")
            )  # fmt: skip
        return found


@dataclass(frozen=True)
class TrainConfig:
    """How long to train, and how often to evaluate, log and checkpoint."""

    epochs: int = 10
    """Passes over the training set (a rule may stretch this, e.g. greedy's epochs per block)."""
    max_steps: int | None = None
    """Stop after this many steps in all (smoke runs); None trains every epoch."""
    eval_every: int = 1
    """Evaluate on the evaluation split every this many epochs (and always at the end)."""
    eval_every_steps: int | None = None
    """Also evaluate every this many steps (learning curves within an epoch); None: never."""
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
        for name in ("max_steps", "checkpoint_every", "diagnostics_every", "eval_every_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                found.append((name, f"{value} is invalid: must be >= 1 or null"))
        return found
