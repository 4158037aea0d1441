"""The user cache directory, cache writes and sha256 digests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from beyond_backprop.errors import DataError
from beyond_backprop.tracking.atomic import atomic_write_bytes

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


def write_cache_file(path: Path, data: bytes) -> None:
    """An atomic write (``tracking.atomic``) with a ``DataError`` that says how to fix an
    unwritable cache."""
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
