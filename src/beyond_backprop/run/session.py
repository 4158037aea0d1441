"""Run an experiment: create or resume its run directory, write its metadata, train it with
the engine its config names, write the summary. The one function behind ``bbp train``,
``bbp launch`` (each rank), ``bbp compare`` and the Python API."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from beyond_backprop.config import ExperimentConfig, dump_config, load_config
from beyond_backprop.data import DatasetSplits
from beyond_backprop.engines.device import check_precision, data_on_device, resolve_device
from beyond_backprop.engines.local import LocalEngine, StageEngine
from beyond_backprop.engines.partition import balanced_boundaries, measure_block_costs
from beyond_backprop.engines.process_group import local_rank
from beyond_backprop.engines.recorder import Progress
from beyond_backprop.engines.schedules import schedule_class, schedule_names
from beyond_backprop.engines.trainer import Trainer
from beyond_backprop.errors import ConfigError
from beyond_backprop.experiment import Experiment, build_experiment
from beyond_backprop.run.group import Group, current_group
from beyond_backprop.run.plugins import load_run_plugins, save_run_plugins
from beyond_backprop.run.resume import restore
from beyond_backprop.tracking.atomic import atomic_write_json, atomic_write_text
from beyond_backprop.tracking.meta import collect_meta
from beyond_backprop.tracking.recorder import RunRecorder
from beyond_backprop.tracking.run_dir import RunDir

log = logging.getLogger(__name__)


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
    """Train ``config`` in a new run directory (every rank of a staged run calls this)."""
    return run(config, None, progress, should_stop, stop_after, data)


def resume_run(
    run_dir: str | Path,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    stop_after: int | None = None,
    data: DatasetSplits | None = None,
) -> RunResult:
    """Continue a stopped run from its latest checkpoint; ends bitwise as if never stopped."""
    load_run_plugins(RunDir.open(run_dir))  # its config may name what they register
    config = load_config(RunDir.open(run_dir).config)
    return run(config, Path(run_dir), progress, should_stop, stop_after, data)


def run(
    config: ExperimentConfig,
    resume: Path | None,
    progress: Progress | None,
    should_stop: Callable[[], bool] | None,
    stop_after: int | None,
    data: DatasetSplits | None,
) -> RunResult:
    """create-or-resume -> meta -> recorder -> train -> summary, for any engine."""
    group = current_group()
    if config.engine.stages != group.world_size:
        raise ConfigError(
            [f"engine.stages is {config.engine.stages} but {group.world_size} processes run"
             + ("" if group.distributed else f": use bbp launch --nproc {config.engine.stages}")]
        )  # fmt: skip
    if config.engine.threads is not None:
        torch.set_num_threads(config.engine.threads)
    experiment = build_experiment(config, data)
    _place(experiment, group)
    run_dir = RunDir(Path(group.share(lambda: str(_create_or_open(config, resume)))))
    for line in experiment.prepare_report if group.rank == 0 else []:
        log.info("prepare: %s", line)
    boundaries, block_costs = _partition(experiment, group, run_dir if resume is not None else None)
    engine = _engine(experiment, group, boundaries, progress, should_stop)
    rank = group.rank if group.distributed else None
    if resume is not None:
        step = restore(engine, run_dir, rank)
        if step >= engine.total_steps:
            log.warning("the run is already complete (%s, step %d of %d): nothing to train",
                        run_dir.path, step, engine.total_steps)  # fmt: skip
            return RunResult(run_dir.path, _final_summary(engine, run_dir, group))
        log.info("resuming %s at step %d of %d", run_dir.path, step, engine.total_steps)
    elif group.rank == 0:
        atomic_write_json(run_dir.meta, _meta(engine, group, block_costs))
    engine.recorder = recorder = RunRecorder(
        run_dir.path, config.train.keep_checkpoints, rank=rank,
        barrier=group.barrier if group.distributed else None,
        tensorboard=config.log.tensorboard, resumed_at=engine.step or None,
    )  # fmt: skip
    started = time.perf_counter()
    try:
        summary = engine.train(stop_after=stop_after)
    finally:
        recorder.close()
    summary.update(_stage_timings(engine, group))
    if block_costs is not None:
        summary["block_costs_seconds"] = block_costs
    summary["wall_seconds_this_session"] = time.perf_counter() - started
    summary["run_dir"] = str(run_dir.path)
    if group.rank == 0:
        atomic_write_json(run_dir.summary, summary)
    return RunResult(run_dir.path, summary)


def _place(experiment: Experiment, group: Group) -> None:
    """Move the experiment to ``engine.device`` (rank r of a staged run: its own GPU)."""
    engine = experiment.config.engine
    check_precision(engine)
    rank = local_rank() if group.distributed else None
    device = resolve_device(engine.device, rank if rank is not None else group.rank)
    data = experiment.data
    nbytes = sum(t.numel() * t.element_size() for s in (data.train, data.test) for t in (s.x, s.y))
    experiment.to(device, data=data_on_device(experiment.config.data.on_device, device, nbytes))
    log.info("device %s, precision %s", device, engine.precision)


def _final_summary(engine: Trainer, run_dir: RunDir, group: Group) -> dict[str, Any]:
    """A complete run's summary as it was written (written now if the run stopped between
    its last checkpoint and its summary)."""
    if run_dir.summary.is_file():
        summary: dict[str, Any] = json.loads(run_dir.summary.read_text(encoding="utf-8"))
        return summary
    summary = {**engine.summary(), "run_dir": str(run_dir.path)}
    if group.rank == 0:
        atomic_write_json(run_dir.summary, summary)
    return summary


def _create_or_open(config: ExperimentConfig, resume: Path | None) -> Path:
    """Rank 0's part: a new run directory with the config in it, or the resumed one."""
    if resume is not None:
        return RunDir.open(resume).path
    run_dir = RunDir.create(config.log.root, config.name, config.rule.name, config.seed)
    atomic_write_text(run_dir.config, dump_config(config))
    save_run_plugins(run_dir)
    return run_dir.path


def _partition(
    experiment: Experiment, group: Group, resumed: RunDir | None
) -> tuple[list[int], list[float] | None]:
    """A staged run's stage boundaries: ``engine.boundaries``; or (null) those the run was
    started with when it is ``resumed`` (its checkpoints hold each stage's own blocks, and a
    new measurement may split otherwise); or balanced by the block costs rank 0 measures for
    all. Returns the boundaries and the costs (None when given; one process: no boundaries)."""
    config = experiment.config
    if not group.distributed:
        return [], None
    if config.engine.boundaries is not None:
        return list(config.engine.boundaries), None
    meta = group.share(  # rank 0's run folder (another node may have none)
        lambda: json.loads(resumed.meta.read_text()) if resumed and resumed.meta.is_file() else {}
    )
    if "stages" in meta:
        boundaries = [start for start, _ in meta["stages"][1:]]
        log.info("stage boundaries %s (those the run was started with)", boundaries)
        return boundaries, meta.get("block_costs_seconds")
    # an interleaved schedule holds several stages per rank; too few blocks for them is
    # refused by the engine, which names the schedule
    name = config.engine.schedule  # an unknown name is refused by the engine
    per_rank = schedule_class(name, True).stages_per_rank if name in schedule_names(True) else 1
    stages = group.world_size * per_rank
    stages = stages if stages <= len(experiment.stack) else group.world_size

    def measured() -> tuple[list[int], list[float]]:
        costs = measure_block_costs(experiment)
        return balanced_boundaries(costs, stages), costs

    boundaries, costs = group.share(measured)
    log.info("stage boundaries %s (balanced by measured block costs)", boundaries)
    return list(boundaries), list(costs)


def _engine(
    experiment: Experiment,
    group: Group,
    boundaries: list[int],
    progress: Progress | None,
    should_stop: Callable[[], bool] | None,
) -> Trainer:
    if not group.distributed:
        return LocalEngine(experiment, progress=progress, should_stop=should_stop)
    return StageEngine(experiment, boundaries, progress=progress if group.rank == 0 else None,
                       should_stop=should_stop)  # fmt: skip


def _stage_timings(engine: Trainer, group: Group) -> dict[str, Any]:
    """A staged run trains as long as its slowest stage: report that, and each stage's time,
    receive waits and peak memory (one process: its own peak memory only). Its steady rate is
    the pipeline's: the slowest stage's (every stage counts the same steps)."""
    if not group.distributed:
        return {}
    stage = getattr(engine.stepper, "stage", None)
    timing = {
        "rank": group.rank,
        "train_seconds": engine.train_seconds,
        "steady_samples_per_second": engine.steady.rate(),
        "recv_wait_seconds": stage.channel.wait_seconds if stage is not None else 0.0,
        "peak_rss_mb": engine.summary()["peak_rss_mb"],
        "peak_device_memory_mb": engine.summary()["peak_device_memory_mb"],
    }
    timings = group.gather(timing)
    device_peaks = [t["peak_device_memory_mb"] for t in timings if t["peak_device_memory_mb"]]
    slowest = max(float(t["train_seconds"]) for t in timings)
    samples = engine.samples
    rates = [t["steady_samples_per_second"] for t in timings]
    return {
        "stage_timings": timings,
        "peak_rss_mb": max(t["peak_rss_mb"] for t in timings),
        "peak_device_memory_mb": max(device_peaks) if device_peaks else None,
        "train_seconds": slowest,
        "samples_per_second": samples / slowest if slowest else 0.0,
        "steady_samples_per_second": None if None in rates else min(rates),
        "steady_rate_of": "slowest stage",
    }


def _meta(engine: Trainer, group: Group, block_costs: list[float] | None) -> dict[str, object]:
    config = engine.exp.config
    summary = engine.stepper.summary()
    return collect_meta(
        {
            "engine": "staged" if group.distributed else "local",
            "backend": torch.distributed.get_backend() if group.distributed else None,
            "device": str(engine.exp.device),
            "precision": config.engine.precision,
            "world_size": group.world_size,
            "threads": config.engine.threads or torch.get_num_threads(),
            "schedule": config.engine.schedule,
            **({"stages": summary["stages"]} if "stages" in summary else {}),
            **({"block_costs_seconds": block_costs} if block_costs is not None else {}),
            "parameters": sum(p.numel() for p in engine.exp.stack.parameters()),
            "blocks": len(engine.exp.stack),
        }
    )
