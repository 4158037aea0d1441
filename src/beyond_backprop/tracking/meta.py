"""What a run needs to be reproduced or compared: versions, code revision, machine, command."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

PACKAGE = "beyond-backprop"
_GIT_TIMEOUT_S = 5.0  # a wedged git (network filesystem, lock) must not hold up a run


def package_version() -> str:
    """The installed version of beyond-backprop, or ``0+unknown`` when it is not installed."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:  # no git, not a repo, no commits
        logger.debug("git %s failed in %s: %s", " ".join(args), cwd, exc)
        return None
    return result.stdout.strip()


def git_state(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """``{"git_sha": str | None, "git_dirty": bool | None}`` for the repository holding ``cwd``.

    ``cwd`` defaults to this package's source directory: the code that ran, wherever the
    command was started from. Both values are None outside a repository or without git.
    """
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    sha = _git(["rev-parse", "HEAD"], where)
    if sha is None:
        return {"git_sha": None, "git_dirty": None}
    # Untracked files do not change what ran from tracked code; modified tracked files do.
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return {"git_sha": sha, "git_dirty": None if status is None else bool(status)}


def device_name() -> str:
    """``cpu``, or the name of the current CUDA device."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.cuda.current_device())
    return "cpu"


def collect_meta(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Metadata for ``meta.json``; keys of ``extra`` (backend, world_size, ...) win over these."""
    meta: dict[str, Any] = {
        "version": package_version(),
        **git_state(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "num_threads": torch.get_num_threads(),
        "device": device_name(),
        "command": list(sys.argv),
        "start_time": datetime.now(UTC).isoformat(),
    }
    meta.update(extra or {})
    return meta
