"""Start or resume a run: the run directory, the engine, the records (the CLI's library side)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from beyond_backprop.config import ExperimentConfig, dump_config, load_config
from beyond_backprop.data import DatasetSplits
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.engines.recorder import Progress
from beyond_backprop.errors import CheckpointError
from beyond_backprop.experiment import build_experiment
from beyond_backprop.tracking.atomic import atomic_write_json, atomic_write_text
from beyond_backprop.tracking.checkpoint import load_latest_checkpoint
from beyond_backprop.tracking.meta import collect_meta
from beyond_backprop.tracking.metrics import metrics_file_name, truncate_after
from beyond_backprop.tracking.recorder import RunRecorder
from beyond_backprop.tracking.run_dir import create_run_dir, open_run_dir

log = logging.getLogger(__name__)

CONFIG_FILE, META_FILE, SUMMARY_FILE = "config.yaml", "meta.json", "summary.json"


@dataclass
class RunResult:
    """Where a run lives and what it reached."""

    run_dir: Path
    summary: dict[str, Any]


def start_run(
    config: ExperimentConfig,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    stop_after: int | None = None,
    data: DatasetSplits | None = None,
) -> RunResult:
    """Build the experiment, create its run directory, train, and write the summary."""
    experiment = build_experiment(config, data)
    run_dir = create_run_dir(config.log.root, config.name, config.rule.name, config.seed)
    atomic_write_text(run_dir / CONFIG_FILE, dump_config(config))
    for line in experiment.prepare_report:
        log.info("prepare: %s", line)
    engine = LocalEngine(experiment, progress=progress, should_stop=should_stop)
    atomic_write_json(run_dir / META_FILE, _meta(config, engine))
    return _train(engine, run_dir, stop_after)


def resume_run(
    run_dir: str | Path,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    stop_after: int | None = None,
    data: DatasetSplits | None = None,
) -> RunResult:
    """Continue a stopped run from its latest checkpoint; ends bitwise as if never stopped."""
    path = open_run_dir(run_dir)
    config = load_config(path / CONFIG_FILE)
    loaded = load_latest_checkpoint(path)
    if loaded is None:
        raise CheckpointError(f"{path} has no checkpoint to resume from (checkpoints/latest)")
    step, state = loaded
    engine = LocalEngine(build_experiment(config, data), progress=progress, should_stop=should_stop)
    engine.load_state_dict(state)
    # records logged after the checkpoint are logged again by the resumed run
    truncate_after(path / metrics_file_name(None), step)
    log.info("resuming %s at step %d of %d", path, step, engine.total_steps)
    return _train(engine, path, stop_after)


def _train(engine: LocalEngine, run_dir: Path, stop_after: int | None) -> RunResult:
    config = engine.exp.config
    recorder = RunRecorder(
        run_dir,
        config.train.keep_checkpoints,
        tensorboard=config.log.tensorboard,
        resumed_at=engine.step or None,
    )
    engine.recorder = recorder
    started = time.perf_counter()
    try:
        summary = engine.train(stop_after=stop_after)
    finally:
        recorder.close()
    summary["wall_seconds_this_session"] = time.perf_counter() - started
    summary["run_dir"] = str(run_dir)
    atomic_write_json(run_dir / SUMMARY_FILE, summary)
    return RunResult(run_dir, summary)


def _meta(config: ExperimentConfig, engine: LocalEngine) -> dict[str, Any]:
    threads = config.engine.threads or torch.get_num_threads()
    return collect_meta(
        {
            "engine": config.engine.name,
            "backend": None,
            "world_size": 1,
            "threads": threads,
            "parameters": sum(p.numel() for p in engine.exp.stack.parameters()),
            "blocks": len(engine.exp.stack),
        }
    )
