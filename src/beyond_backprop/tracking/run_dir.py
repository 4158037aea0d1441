"""The run directory: ``<root>/<name>/<YYYYMMDD-HHMMSS>_<rule>_s<seed>/``. ``RunDir`` is the
one place where the names of a run's files are spelled."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from beyond_backprop.errors import CheckpointError, ConfigError

CONFIG_FILE = "config.yaml"
META_FILE = "meta.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
PLUGINS_FILE = "plugins.json"
CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "state.pt"
LATEST_POINTER = "latest"
TENSORBOARD_DIR = "tensorboard"

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


def metrics_file_name(rank: int | None = None) -> str:
    """``metrics.jsonl`` for a single-process run, ``metrics.rank{r}.jsonl`` for rank ``r``."""
    return METRICS_FILE if rank is None else f"metrics.rank{rank}.jsonl"


def state_file_name(rank: int | None = None) -> str:
    """A checkpoint's state file: ``state.pt``, or ``rank{r}.pt`` for rank ``r`` of a staged run."""
    return STATE_FILE if rank is None else f"rank{rank}.pt"


def checksum_file_name(state_file: str) -> str:
    """The sidecar holding a state file's sha256 (``sha256sum`` format): ``state.pt.sha256``."""
    return f"{state_file}.sha256"


@dataclass(frozen=True)
class RunDir:
    """A run directory and the paths of its files.

    Examples:
        >>> RunDir(Path("runs/mnist/20240501-120000_dgl_s0")).metrics(1).name
        'metrics.rank1.jsonl'
    """

    path: Path

    @classmethod
    def create(cls, root: str | os.PathLike[str], name: str, rule: str, seed: int) -> RunDir:
        """A fresh run directory (``create_run_dir``)."""
        return cls(create_run_dir(root, name, rule, seed))

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        """An existing run directory (``open_run_dir``: it must hold ``config.yaml``)."""
        return cls(open_run_dir(path))

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def meta(self) -> Path:
        return self.path / META_FILE

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def plugins(self) -> Path:
        """The ``--plugin`` modules the run was started with (written only when there were
        any); a resume loads them again before it reads ``config.yaml``."""
        return self.path / PLUGINS_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    def metrics(self, rank: int | None = None) -> Path:
        """The metrics file of the run (``rank`` None) or of one rank of a staged run."""
        return self.path / metrics_file_name(rank)

    def metrics_files(self) -> list[Path]:
        """Every metrics file there is: the run's, or each rank's of a staged run."""
        own = self.metrics()
        if own.is_file():
            return [own]
        return sorted(self.path.glob(metrics_file_name(0).replace("0", "*")))
