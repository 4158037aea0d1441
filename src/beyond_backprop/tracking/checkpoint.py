"""Checkpoints: ``checkpoints/step-N/state.pt`` plus a ``checkpoints/latest`` pointer written last.

The pointer is the commit point: a crash before it leaves the previous checkpoint as the latest,
so a half-written step directory or a ``.tmp-*`` leftover is never read. Beside each state file,
``state.pt.sha256`` records its checksum (written before the pointer); loading refuses a file
whose bytes no longer match. States are loaded with ``weights_only=True`` and must hold only
tensors, containers and plain scalars; ``save_checkpoint`` checks this up front, so a bad state
fails when saved rather than when resumed. A write that fails (a full disk) raises
``CheckpointWriteError`` naming the path and the free space, and leaves the latest as it was.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from beyond_backprop.errors import CheckpointError, CheckpointWriteError
from beyond_backprop.tracking.atomic import atomic_torch_save, atomic_write_text
from beyond_backprop.tracking.run_dir import (
    CHECKPOINTS_DIR,
    LATEST_POINTER,
    STATE_FILE,
    checksum_file_name,
)

logger = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"step-(\d+)")

# What torch.load(weights_only=True) accepts (checked on torch 2.13); exact types, since
# subclasses such as numpy scalars, enums or namedtuples are refused.
_CONTAINERS = (dict, OrderedDict, list, tuple, set, torch.Size)
_LEAVES = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device)


def checkpoint_dir(run_dir: str | os.PathLike[str], step: int) -> Path:
    """The directory of the checkpoint at ``step``: ``run_dir/checkpoints/step-<step>``."""
    return Path(run_dir) / CHECKPOINTS_DIR / f"step-{step}"


def check_weights_only_safe(obj: Any, where: str = "state") -> None:
    """Raise TypeError naming the first value that ``torch.load(weights_only=True)`` refuses."""
    if isinstance(obj, torch.Tensor) or type(obj) in _LEAVES:
        return
    if type(obj) not in _CONTAINERS:
        raise TypeError(
            f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which "
            "torch.load(weights_only=True) cannot read; store tensors, dicts, lists, tuples, "
            "numbers or strings"
        )
    if isinstance(obj, dict):
        for key, value in obj.items():
            check_weights_only_safe(key, f"{where} key {key!r}")
            check_weights_only_safe(value, f"{where}[{key!r}]")
    else:
        for i, value in enumerate(obj):
            check_weights_only_safe(value, f"{where}[{i}]")


def _step_dirs(root: Path) -> dict[int, Path]:
    steps: dict[int, Path] = {}
    for child in root.iterdir():
        match = _STEP_DIR.fullmatch(child.name)
        if match and child.is_dir():
            steps[int(match.group(1))] = child
    return steps


def _prune(root: Path, current: int, keep: int) -> None:
    steps = _step_dirs(root)
    # Steps after `current` belong to an abandoned attempt (the pointer now names `current`);
    # counting them as "recent" would delete completed checkpoints in their favour.
    kept = set(sorted(s for s in steps if s <= current)[-keep:])
    for step, path in sorted(steps.items()):
        if step not in kept:
            try:
                shutil.rmtree(path)
            except OSError as exc:  # a failed cleanup must not fail the run
                logger.warning("could not remove old checkpoint %s: %s", path, exc)


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    step: int,
    state: dict[str, Any],
    *,
    keep: int | None = None,
    file_name: str = STATE_FILE,
    commit: bool = True,
) -> Path:
    """Save ``state`` as the checkpoint at ``step`` and make it the latest; return its file.

    Args:
        run_dir: the run directory (``checkpoints/`` is created inside it).
        step: the step position the state belongs to (>= 0).
        state: tensors, dicts, lists, tuples and plain scalars only.
        keep: when given, keep only this many most recent checkpoints (the others are removed
            after the pointer names the new one).
        file_name: the state's file in the step folder (one per rank in a staged run).
        commit: update the ``latest`` pointer; a staged run's ranks write their files with
            False, then one rank calls ``commit_checkpoint`` once all files are written.

    Raises:
        TypeError: ``state`` holds a value that ``weights_only`` loading refuses.
        ValueError: ``step`` < 0 or ``keep`` < 1.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    check_weights_only_safe(state)
    path = checkpoint_dir(run_dir, step) / file_name
    with _reported(run_dir, path):
        atomic_torch_save(path, state)
    sidecar = path.with_name(checksum_file_name(file_name))
    with _reported(run_dir, sidecar):  # on disk before the pointer names the checkpoint
        atomic_write_text(sidecar, f"{file_sha256(path)}  {file_name}\n")
    if commit:
        commit_checkpoint(run_dir, step, keep=keep)
    return path


def commit_checkpoint(
    run_dir: str | os.PathLike[str], step: int, *, keep: int | None = None
) -> None:
    """Point ``latest`` at ``step`` (the commit point: written last), then prune to ``keep``."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    with _reported(run_dir, root / LATEST_POINTER):
        atomic_write_text(root / LATEST_POINTER, f"step-{step}")
    if keep is not None:
        _prune(root, step, keep)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _reported(run_dir: str | os.PathLike[str], path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into one ``CheckpointWriteError`` line."""
    try:
        yield
    except OSError as error:
        where = next((p for p in path.parents if p.exists()), Path("/"))
        free = shutil.disk_usage(where).free / 2**20
        latest = latest_checkpoint_step(run_dir)
        kept = f"step-{latest} stays the latest" if latest is not None else "none was written"
        raise CheckpointWriteError(
            f"cannot write checkpoint {path}: {error.strerror or error} ({free:.1f} MiB free "
            f"on {where}); {kept}: free some space and resume the run"
        ) from error


def latest_checkpoint_step(run_dir: str | os.PathLike[str]) -> int | None:
    """The step the ``latest`` pointer names, or None when no checkpoint was committed."""
    pointer = Path(run_dir) / CHECKPOINTS_DIR / LATEST_POINTER
    try:
        text = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read checkpoint pointer {pointer}: {exc}") from exc
    match = _STEP_DIR.fullmatch(text)
    if match is None:
        raise CheckpointError(f"checkpoint pointer {pointer} holds {text!r}, expected 'step-N'")
    return int(match.group(1))


def _reason(exc: BaseException) -> str:
    """The informative sentence of torch's multi-paragraph load errors, on one line."""
    text = str(exc)
    # weights_only failures open with generic advice; the cause follows this marker.
    text = text.split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0].split(". ")[0].rstrip(".") if lines else type(exc).__name__


def _verify(path: Path) -> None:
    """Refuse a state file whose bytes differ from the checksum recorded when it was written
    (checkpoints written before checksums were recorded have no sidecar and are read as is)."""
    sidecar = path.with_name(checksum_file_name(path.name))
    try:
        recorded = sidecar.read_text(encoding="utf-8").split()[0]
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        raise CheckpointError(f"cannot read checksum {sidecar}: {exc}") from exc
    if file_sha256(path) != recorded:
        raise CheckpointError(
            f"cannot read checkpoint {path}: it is corrupted (its sha256 differs from the one "
            f"recorded in {sidecar.name} when it was written)"
        )


def load_latest_checkpoint(
    run_dir: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    file_name: str = STATE_FILE,
) -> tuple[int, dict[str, Any]] | None:
    """Load the checkpoint the ``latest`` pointer names as ``(step, state)``; None if there is none.

    Raises:
        CheckpointError: the pointer is malformed, or names a missing, corrupted (checksum) or
            unreadable state file.
    """
    step = latest_checkpoint_step(run_dir)
    if step is None:
        return None
    path = checkpoint_dir(run_dir, step) / file_name
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} named by the 'latest' pointer does not exist")
    _verify(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types (pickle, zip, RuntimeError) for bad files
        raise CheckpointError(f"cannot read checkpoint {path}: {_reason(exc)}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    return step, state
