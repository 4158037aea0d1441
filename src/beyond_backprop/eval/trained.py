"""A finished run (one-process or staged), rebuilt from its config with its latest weights."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from beyond_backprop.config import load_config
from beyond_backprop.experiment import Experiment, build_experiment
from beyond_backprop.tracking.run_dir import CONFIG_FILE, open_run_dir
from beyond_backprop.tracking.weights import load_run_weights


@dataclass
class TrainedRun:
    """The run's directory, the step of its latest checkpoint, and its experiment with the
    checkpoint's block and local-module weights loaded."""

    path: Path
    step: int
    experiment: Experiment


def load_trained_run(run_dir: str | os.PathLike[str], train_limit: int | None = None
                     ) -> TrainedRun:  # fmt: skip
    """Rebuild ``run_dir``'s experiment and load its latest weights; ``train_limit`` (when
    given) replaces the config's ``data.train_limit``."""
    path = open_run_dir(run_dir)
    config = load_config(path / CONFIG_FILE)
    if train_limit:
        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, train_limit=train_limit)
        )
    step, model_state, locals_state = load_run_weights(path)
    experiment = build_experiment(config)
    experiment.stack.load_state_dict(model_state)
    experiment.locals_container.load_state_dict(locals_state)
    return TrainedRun(path, step, experiment)
