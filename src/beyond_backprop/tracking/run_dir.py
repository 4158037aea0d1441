"""The run directory: ``<root>/<name>/<YYYYMMDD-HHMMSS>_<rule>_s<seed>/`` and its file names."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from beyond_backprop.errors import CheckpointError, ConfigError

CONFIG_FILE = "config.yaml"
META_FILE = "meta.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINTS_DIR = "checkpoints"

TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"


def _check_component(key: str, value: str) -> None:
    # Names become path components: a separator or ".." would write outside the runs root.
    separators = {"/", os.sep, os.altsep or "/"}
    if not value or value in {".", ".."} or any(sep in value for sep in separators):
        raise ConfigError([f"{key}: {value!r} is not usable in a directory name"])


def run_dir_name(rule: str, seed: int, now: datetime) -> str:
    """The leaf name ``<YYYYMMDD-HHMMSS>_<rule>_s<seed>`` (without a collision suffix)."""
    return f"{now.strftime(TIMESTAMP_FORMAT)}_{rule}_s{seed}"


def create_run_dir(
    root: str | os.PathLike[str],
    name: str,
    rule: str,
    seed: int,
    now: datetime | None = None,
) -> Path:
    """Create and return a fresh run directory under ``root/name``.

    ``now`` defaults to the local time. Two runs started in the same second get ``-2``, ``-3``, ...
    suffixes; ``mkdir`` without ``exist_ok`` makes the choice safe against concurrent starts.

    Examples:
        >>> import tempfile
        >>> from datetime import datetime
        >>> root = tempfile.mkdtemp()
        >>> create_run_dir(root, "mnist", "dgl", 0, datetime(2024, 5, 1, 12, 0, 0)).name
        '20240501-120000_dgl_s0'
        >>> create_run_dir(root, "mnist", "dgl", 0, datetime(2024, 5, 1, 12, 0, 0)).name
        '20240501-120000_dgl_s0-2'
    """
    _check_component("name", name)
    _check_component("rule", rule)
    parent = Path(root) / name
    parent.mkdir(parents=True, exist_ok=True)
    base = run_dir_name(rule, seed, now if now is not None else datetime.now())
    candidate, n = parent / base, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = parent / f"{base}-{n}"


def open_run_dir(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path after checking it is a run directory (holds ``config.yaml``).

    Raises:
        CheckpointError: the directory does not exist, is a file, or has no config.yaml.
    """
    run_dir = Path(path)
    if not run_dir.exists():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} is not a directory")
    if not (run_dir / CONFIG_FILE).is_file():
        raise CheckpointError(f"{run_dir} is not a run directory: it has no {CONFIG_FILE}")
    return run_dir
