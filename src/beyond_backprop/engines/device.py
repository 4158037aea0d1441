"""Where a run's tensors live: the device, the process-group backend and the precision.

The GPU path is the CPU path with another ``torch.device``: nothing else in the engines
branches on the device. The few CUDA-only calls are here and named (``synchronize``,
``peak_device_memory_mb``, the availability checks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from beyond_backprop.config.engine import EngineConfig
from beyond_backprop.errors import ConfigError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str, local_rank: int | None = None) -> torch.device:
    """The device ``engine.device`` names on this machine (``cuda`` on rank r of a staged run:
    ``cuda:r`` of the node's GPUs); a CUDA device on a machine without one is a config error."""
    available = torch.cuda.is_available()
    if spec == "auto":
        spec = "cuda" if available else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if not available:
        raise ConfigError(
            [f"engine.device: {spec!r} needs a CUDA GPU, but this torch ({torch.__version__}) "
             "sees none; use engine.device=cpu (or auto)"]
        )  # fmt: skip
    count = torch.cuda.device_count()
    index = int(spec.partition(":")[2]) if ":" in spec else (local_rank or 0) % count
    if index >= count:
        raise ConfigError([f"engine.device: {spec!r} is invalid: this machine has {count} GPUs"])
    return torch.device("cuda", index)


def choose_backend(spec: str, device: torch.device) -> str:
    """``engine.backend``: nccl when asked for (it must be able to serve) or, under ``auto``,
    when this rank has a GPU and nccl is built in; gloo otherwise."""
    nccl_ok = device.type == "cuda" and dist.is_nccl_available()
    if spec == "nccl" and not nccl_ok:
        why = "this torch has no nccl" if device.type == "cuda" else f"the device is {device}"
        raise ConfigError(
            [f"engine.backend: 'nccl' cannot serve here ({why}); use engine.backend=gloo or auto"]
        )
    if spec == "auto":
        return "nccl" if nccl_ok else "gloo"
    return spec


def check_precision(engine: EngineConfig) -> None:
    """Refuse a precision this torch cannot autocast to (one line, exit 2)."""
    if engine.precision == "fp16" and not hasattr(torch.amp, "GradScaler"):
        raise ConfigError(["engine.precision: 'fp16' needs torch.amp.GradScaler (torch >= 2.3)"])


@dataclass(frozen=True)
class Precision:
    """The autocast of a step: device type and dtype (None: fp32, no autocast)."""

    device_type: str
    dtype: torch.dtype | None

    @classmethod
    def of(cls, engine: EngineConfig, device: torch.device) -> Precision:
        return cls(device.type, DTYPES.get(engine.precision))

    @property
    def scaled(self) -> bool:
        """Whether gradients are scaled (fp16: each block optimizer has a gradient scaler)."""
        return self.dtype is torch.float16


_CURRENT: ContextVar[Precision | None] = ContextVar("bbp_precision", default=None)
_LOSS_SCALE: ContextVar[Callable[[int], float] | None] = ContextVar("bbp_scale", default=None)


@contextmanager
def training_precision(
    precision: Precision, loss_scale: Callable[[int], float] | None = None
) -> Iterator[None]:
    """Within: the blocks' forward passes and local losses autocast (``block_autocast``), and
    under fp16 block k's losses are scaled by ``loss_scale(k)`` (``current_loss_scale``)."""
    tokens = _CURRENT.set(precision), _LOSS_SCALE.set(loss_scale if precision.scaled else None)
    try:
        yield
    finally:
        _CURRENT.reset(tokens[0])
        _LOSS_SCALE.reset(tokens[1])


def current_loss_scale(k: int) -> float:
    """The factor block ``k``'s losses are multiplied by in this step (1 but under fp16)."""
    scale = _LOSS_SCALE.get()
    return 1.0 if scale is None else scale(k)


def block_autocast() -> Any:
    """The autocast context for a block's forward pass or local loss (off outside a training
    step or in fp32); backward passes and optimizer steps run outside it."""
    precision = _CURRENT.get()
    if precision is None or precision.dtype is None:
        return nullcontext()
    return torch.autocast(precision.device_type, dtype=precision.dtype)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a clock read after it is honest (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_device_memory_mb(device: torch.device) -> float | None:
    """Peak memory allocated on the device so far, in MiB (None on the CPU)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``: a CPU batch bound for a GPU goes through pinned memory, so the copy
    is asynchronous (``non_blocking``); a tensor already there is returned as it is."""
    if x.device == device:
        return x
    if device.type == "cuda" and x.device.type == "cpu":
        x = x.pin_memory()
    return x.to(device, non_blocking=True)


def use_device(device: torch.device) -> None:
    """Make ``device`` this process's current CUDA device (nccl needs it; CUDA only)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)


def data_on_device(setting: object, device: torch.device, nbytes: int) -> bool:
    """``data.on_device``: ``auto`` keeps the data on a GPU when they take at most a quarter
    of its memory (never on the CPU, where it already is)."""
    if device.type == "cpu":
        return False
    if setting == "auto":
        return nbytes <= torch.cuda.get_device_properties(device).total_memory // 4
    return bool(setting)


def collective_device() -> torch.device:
    """Where a collective's tensors must be: this rank's GPU under nccl, else the CPU."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def side_stream(device: torch.device) -> Any:
    """A CUDA stream of its own for a background thread's work on ``device`` (the async
    schedule's receives), so it overlaps the training thread's kernels; nothing on the CPU."""
    if device.type != "cuda":
        return nullcontext()
    return torch.cuda.stream(torch.cuda.Stream(device))
