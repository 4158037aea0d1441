"""The experiment config: frozen dataclasses are the schema."""

from __future__ import annotations

from dataclasses import dataclass, field
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
        """TensorBoard must be installed when asked for (checked before any run starts)."""
        from beyond_backprop.tracking.tensorboard import tensorboard_available

        if self.tensorboard and not tensorboard_available():
            return [("tensorboard", "true needs the tensorboard package: pip install -e "
                     "'.[tb]' (or set log.tensorboard=false)")]  # fmt: skip
        return []


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
