"""Atomic file writes: a temp file beside the target, fsync, ``os.replace``, fsync the directory.

A reader sees either the old file or the new one, never a partial one, even after a crash: the
rename is atomic on POSIX, and the fsyncs make the data durable before the name points at it.
Temp files start with ``.tmp-`` so readers and cleanup can recognise leftovers.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

TEMP_PREFIX = ".tmp-"

# Read once: os.umask can only be read by setting it, which is not thread-safe to do per write.
_UMASK = os.umask(0)
os.umask(_UMASK)


def is_temp(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a temp file left by an atomic write (never to be read as data)."""
    return Path(path).name.startswith(TEMP_PREFIX)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename inside ``directory`` durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened, and renames need no fsync
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories; nothing more can be done
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{target.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates 0600; give the file the permissions an ordinary open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:  # also on KeyboardInterrupt: never leave a temp file behind
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return target


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    return _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as JSON (indent 2, sorted keys, trailing newline) atomically."""
    # Serialise before touching the disk, so an unserialisable object leaves no trace.
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    return atomic_write_text(path, text)


def atomic_torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically; returns the path."""
    return _atomic_write(path, lambda f: torch.save(obj, f))
