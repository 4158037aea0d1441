"""The experiment config: frozen dataclasses are the schema."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beyond_backprop.config.engine import EngineConfig, TrainConfig
from beyond_backprop.config.optim import OptimConfig
from beyond_backprop.data.config import DataConfig
from beyond_backprop.models.cnn import CNNConfig  # noqa: F401  (registers "cnn")
from beyond_backprop.models.mlp import MLPConfig


@dataclass(frozen=True)
class ModelSection:
    """``model:`` in YAML: ``arch`` plus the options of that architecture's config."""

    arch: str = "mlp"
    options: Any = field(default_factory=MLPConfig)


@dataclass(frozen=True)
class RuleSection:
    """``rule:`` in YAML: ``name`` plus the options of that rule's ``Config``."""

    name: str = "backprop"
    options: Any = None


@dataclass(frozen=True)
class LogConfig:
    """Where runs go and what is shown while training."""

    root: str = "runs"
    """Runs are written under ``<root>/<name>/``."""
    progress: bool = True
    """A progress bar on a terminal (never under CI or when output is not a terminal)."""
    tensorboard: bool = False
    """Also write every metric record as a TensorBoard scalar under ``<run>/tensorboard``
    (needs the ``tb`` extra)."""

    def problems(self) -> list[tuple[str, str]]:
        """The root must be (or become) a directory; TensorBoard must be installed when asked
        for (both checked before any run starts)."""
        from beyond_backprop.tracking.tensorboard import tensorboard_available

        found = []
        root = Path(self.root)
        # the nearest existing ancestor must be a directory, or mkdir fails after the load
        existing = next((p for p in (root, *root.parents) if p.exists()), None)
        if not self.root:
            found.append(("root", "'' is invalid: name a directory (e.g. runs)"))
        elif existing is not None and not existing.is_dir():
            what = "is" if existing == root else f"is under {str(existing)!r}, which is"
            found.append(("root", f"{self.root!r} {what} a file, not a directory"))
        if self.tensorboard and not tensorboard_available():
            found.append(("tensorboard", "true needs the tensorboard package: pip install -e "
                          "'.[tb]' (or set log.tensorboard=false)"))  # fmt: skip
        return found


@dataclass(frozen=True)
class ExperimentConfig:
    """One training run: what to train, on what, with which rule, where, and for how long."""

    name: str = "experiment"
    """The run's name: runs go to ``<log.root>/<name>/``."""
    seed: int = 0
    """Seeds the model initialisation, the batch order and every random draw."""
    deterministic: bool = False
    """``torch.use_deterministic_algorithms(True)`` for the run."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    rule: RuleSection = field(default_factory=RuleSection)
    engine: EngineConfig = field(default_factory=EngineConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def problems(self) -> list[tuple[str, str]]:
        """The name becomes a directory name; the seed feeds generators of 64-bit seeds
        (mixed with epoch and step numbers, so it is kept to 32 bits)."""
        found = []
        name = self.name
        separators = {"/", os.sep, os.altsep or "/"}
        if not name or name in {".", ".."} or any(sep in name for sep in separators):
            found.append(("name", f"{name!r} is invalid: must be usable as a directory name "
                          "(no '/', not '.' or '..')"))  # fmt: skip
        elif len(name) > MAX_NAME_LENGTH or not name.isprintable():
            shown = repr(name) if len(name) <= 40 else f"{name[:40]!r}... ({len(name)} chars)"
            found.append(("name", f"{shown} is invalid: at most {MAX_NAME_LENGTH} printable "
                          "characters"))  # fmt: skip
        if not 0 <= self.seed < 2**32:
            found.append(("seed", f"{self.seed} is invalid: must be in [0, 2**32)"))
        return found


MAX_NAME_LENGTH = 100
"""The longest run name (file systems allow 255 bytes for a whole directory name)."""
