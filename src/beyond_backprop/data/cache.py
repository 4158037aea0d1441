"""The user cache directory, atomic file writes and sha256 digests."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from beyond_backprop.errors import DataError

CACHE_ENV = "BBP_CACHE_DIR"
"""Environment variable that overrides the cache directory."""


def cache_dir() -> Path:
    """The cache directory: ``$BBP_CACHE_DIR``, else ``$XDG_CACHE_HOME/beyond-backprop``, else
    ``~/.cache/beyond-backprop`` (not created here)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "beyond-backprop"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one:
    a temporary file beside the target, fsync, ``os.replace``, then fsync of the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write_cache_file(path: Path, data: bytes) -> None:
    """``atomic_write_bytes`` with a ``DataError`` that says how to fix an unwritable cache."""
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise DataError(
            f"cannot write cache file {path}: {exc}; set {CACHE_ENV} to a writable directory"
        ) from exc


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """The hex sha256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
