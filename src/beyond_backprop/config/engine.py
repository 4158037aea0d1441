"""The engine and training-loop sections of an experiment config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MAX_THREADS = 1024
"""The most threads a run may ask torch for (torch's own limit is a C int)."""


@dataclass(frozen=True)
class ReplayConfig:
    """The replay buffers of ``engine.schedule: async`` (one process: a seeded simulation of
    DGL's asynchronous modules; several stages: a buffer per stage above the first)."""

    size: int = 50
    """Capacity of each buffer (the oldest entry is dropped when a new one arrives)."""
    sampling: Literal["uniform", "newest", "priority_lifo"] = "uniform"
    """``uniform``: a module draws any stored entry at random (the paper's Algorithm 2);
    ``newest``: it takes the latest one; ``priority_lifo`` (the default of the authors' buffer
    code): the least-used entries first, the freshest among them. Drawing never removes an
    entry."""
    max_buffer_reuse: int | None = None
    """An entry is drawn at most this many times; when every entry is used up the module
    stalls until a fresh one arrives (the authors' ``max_buffer_reuse``). None: no limit."""
    order: Literal["in_order", "shuffled"] = "shuffled"
    """The order the modules step in within a tick: bottom-up, or a seeded permutation."""
    slow_block: int | None = None
    """A module slowed down (DGL's slow-module experiment); None: none."""
    slowdown: float = 1.0
    """The slow module steps with probability ``1 / slowdown`` in each tick."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        if self.size < 1:
            found.append(("size", f"{self.size} is invalid: must be >= 1"))
        if self.max_buffer_reuse is not None and self.max_buffer_reuse < 1:
            found.append(
                ("max_buffer_reuse", f"{self.max_buffer_reuse} is invalid: must be >= 1 or null")
            )
        if self.slowdown < 1.0:
            found.append(("slowdown", f"{self.slowdown} is invalid: must be >= 1"))
        if self.slow_block is not None and self.slow_block < 1:
            found.append(
                ("slow_block", f"{self.slow_block} is invalid: must be >= 1 (module 0 reads data)")
            )
        return found


@dataclass(frozen=True)
class EngineConfig:
    """Where and when blocks run: how many stages (processes) and the schedule."""

    stages: int = 1
    """Processes, one stage of consecutive blocks each: 1 trains in this process (``bbp
    train``), more run one process per stage (``bbp launch --nproc K`` sets it)."""
    schedule: str = "naive"
    """What each stage does in a step (``docs/engines.md``). One process: ``naive`` (every
    block in order on every batch) or ``async`` (DGL's replay buffers, simulated with a seeded
    update order). Several stages: ``naive`` (one batch in flight), ``pipelined``, ``gpipe``,
    ``async``, ``decoupled``, ``delayed``, ``stale_error``, ``stale_overlap``, and PyTorch's
    pipeline schedules ``pp_gpipe``, ``pp_1f1b``, ``pp_looped_bfs``, ``pp_interleaved_1f1b``,
    ``pp_zero_bubble``, ``pp_zbv``. The valid values depend on ``stages`` and on the rule's
    wiring (checked before training starts)."""
    threads: int | None = None
    """``torch.set_num_threads`` for the run (per process when staged); None: torch's default."""
    device: str = "auto"
    """Where blocks, local modules, optimizers and batches live: ``auto`` (CUDA when available,
    else the CPU), ``cpu``, ``cuda`` (staged: ``cuda:LOCAL_RANK``) or ``cuda:N``."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Autocast of each block's forward pass and local loss: ``fp32`` (off), ``bf16``, or
    ``fp16`` (with a gradient scaler per block optimizer)."""
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """Staged: the ``torch.distributed`` backend; ``auto``: nccl when every rank has a GPU,
    else gloo."""
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    """The replay buffers of the ``async`` schedule."""
    microbatches: int = 4
    """``gpipe`` and the ``pp_*`` schedules: micro-batches per batch."""
    staleness: int | None = None
    """``stale_error`` and ``stale_overlap``: a stage learns from the signal of the stage above
    (DFA's output error, the overlap's one-block gradient) this many steps late, so it never
    waits for the current step's; 0 is the lockstep ``naive`` schedule, bitwise. None: the
    schedule's own default (``stale_error``: stages - 1, the forward passes the error of a
    batch needs to reach stage 0; ``stale_overlap``: 1, the stage just above)."""
    gpipe_batchnorm: Literal["microbatch", "batch"] = "microbatch"
    """``gpipe``: the statistics BatchNorm layers normalise with: each micro-batch's own (GPipe's
    choice; gradients differ from one process) or the whole batch's (one process's gradients,
    but a stage with BatchNorm then overlaps no micro-batches; ``docs/engines.md``)."""
    boundaries: tuple[int, ...] | None = None
    """Staged: the first block of every stage after the first (e.g. [2] for 2 stages); None
    balances the stages by measured per-block cost."""
    timeout_s: float = 60.0
    """Staged: a stage waiting longer than this for another ends the run with an error."""
    stop_check_every: int = 20
    """Staged: every this many steps the stages agree whether a stop (SIGTERM) was asked."""
    name: str | None = None
    """Replaced by ``stages`` (kept only to say so)."""
    mode: str | None = None
    """Replaced by ``schedule`` (kept only to say so)."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        if self.name is not None:
            found.append(("name", f"{self.name!r}: engine.name was replaced by engine.stages "
                          "(1: one process, bbp train; K > 1: bbp launch --nproc K)"))  # fmt: skip
        if self.mode is not None:
            hint = "engine.schedule: async" if self.mode == "async_sim" else "engine.schedule"
            found.append(("mode", f"{self.mode!r}: engine.mode was replaced by {hint}"))
        if not _valid_device(self.device):
            found.append(("device", f"{self.device!r} is invalid: valid: auto, cpu, cuda, cuda:N"))
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            found.append(
                ("threads", f"{self.threads} is invalid: must be in [1, {MAX_THREADS}] or null")
            )
        for key in ("stages", "microbatches", "stop_check_every"):
            if getattr(self, key) < 1:
                found.append((key, f"{getattr(self, key)} is invalid: must be >= 1"))
        if self.staleness is not None and self.staleness < 0:
            found.append(("staleness", f"{self.staleness} is invalid: must be >= 0 (steps)"))
        if not self.timeout_s > 0:
            found.append(("timeout_s", f"{self.timeout_s} is invalid: must be > 0"))
        starts = list(self.boundaries or ())
        if starts != sorted(set(starts)) or any(k < 1 for k in starts):
            found.append(("boundaries", f"{starts} is invalid: indices >= 1, strictly increasing"))
        elif self.boundaries is not None and len(self.boundaries) != self.stages - 1:
            found.append(
                ("boundaries", f"{list(self.boundaries)} gives {len(self.boundaries) + 1} stages "
                 f"but engine.stages is {self.stages}")
            )  # fmt: skip
        return found

    @property
    def staged(self) -> bool:
        """Whether the run has one process per stage."""
        return self.stages > 1


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


def _valid_device(spec: str) -> bool:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (N a non-negative integer)."""
    kind, _, index = spec.partition(":")
    if not index:
        return spec in ("auto", "cpu", "cuda")
    return kind == "cuda" and index.isdigit()
