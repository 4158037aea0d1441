"""Run a staged experiment: one process per stage, started by ``torchrun`` (``bbp launch``)
or by ``torch.multiprocessing.spawn`` in tests.

Each ``torchrun`` process runs ``python -m beyond_backprop.cli.worker`` (see there), which
calls ``init_process_group`` and ``run_staged``.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from beyond_backprop.config import ExperimentConfig, dump_config
from beyond_backprop.engines.local import peak_rss_mb
from beyond_backprop.engines.partition import balanced_boundaries, measure_block_costs
from beyond_backprop.engines.recorder import Progress
from beyond_backprop.engines.staged import StageEngine
from beyond_backprop.errors import CheckpointError, ConfigError
from beyond_backprop.experiment import build_experiment
from beyond_backprop.runner import CONFIG_FILE, META_FILE, SUMMARY_FILE, RunResult
from beyond_backprop.tracking.atomic import atomic_write_json, atomic_write_text
from beyond_backprop.tracking.checkpoint import load_latest_checkpoint
from beyond_backprop.tracking.meta import collect_meta
from beyond_backprop.tracking.metrics import metrics_file_name, truncate_after
from beyond_backprop.tracking.recorder import RunRecorder, rank_state_file
from beyond_backprop.tracking.run_dir import create_run_dir, open_run_dir

log = logging.getLogger(__name__)


def choose_backend() -> str:
    """gloo: this engine keeps blocks on the CPU (nccl needs every rank on a GPU, which the
    engine does not place blocks on yet); reported in meta.json."""
    return "gloo"


def init_process_group(
    config: ExperimentConfig, rank: int, world_size: int, init_method: str = "env://"
) -> str:
    """Join the process group with the config's short timeout; returns the backend."""
    backend = choose_backend()
    timeout = datetime.timedelta(seconds=config.engine.timeout_s)
    dist.init_process_group(
        backend, init_method=init_method, rank=rank, world_size=world_size, timeout=timeout
    )
    return backend


def run_staged(
    config: ExperimentConfig,
    *,
    resume: Path | None = None,
    stop_after: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """This rank's part of a staged run (the process group must be initialised)."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if config.engine.stages != world_size:
        raise ConfigError(
            [f"engine.stages is {config.engine.stages} but {world_size} processes run"]
        )
    if config.engine.threads is not None:
        torch.set_num_threads(config.engine.threads)
    experiment = build_experiment(config)
    run_dir = _shared_run_dir(config, rank, resume)
    boundaries = _boundaries(config, experiment.stack, experiment.data.train.x, rank)
    engine = StageEngine(experiment, boundaries, progress=progress if rank == 0 else None,
                         should_stop=should_stop)  # fmt: skip
    if resume is not None:
        loaded = load_latest_checkpoint(run_dir, file_name=rank_state_file(rank))
        if loaded is None:
            raise CheckpointError(f"{run_dir} has no checkpoint to resume from")
        engine.load_state_dict(loaded[1])
        truncate_after(run_dir / metrics_file_name(rank), loaded[0])
    elif rank == 0:
        atomic_write_json(run_dir / META_FILE, _meta(config, engine))
    engine.recorder = recorder = RunRecorder(
        run_dir, config.train.keep_checkpoints, rank=rank, barrier=dist.barrier,
        tensorboard=config.log.tensorboard, resumed_at=engine.step or None,
    )  # fmt: skip
    try:
        summary = engine.train(stop_after=stop_after)
    finally:
        recorder.close()
    timing = {
        "rank": rank,
        "train_seconds": engine.train_seconds,
        "recv_wait_seconds": engine.stage.channel.wait_seconds,
        "peak_rss_mb": peak_rss_mb(),
    }
    timings: list[object] = [None] * world_size
    dist.all_gather_object(timings, timing)
    summary["stage_timings"] = timings
    summary["peak_rss_mb"] = max(t["peak_rss_mb"] for t in timings)  # type: ignore[index]
    # the pipeline trains as long as its slowest stage: report that, not rank 0's own time
    slowest = max(float(t["train_seconds"]) for t in timings)  # type: ignore[index]
    samples = engine.step * config.data.batch_size
    summary.update(train_seconds=slowest, samples_per_second=samples / slowest if slowest else 0.0)
    summary["run_dir"] = str(run_dir)
    if rank == 0:
        atomic_write_json(run_dir / SUMMARY_FILE, summary)
    return RunResult(run_dir, summary)


def _shared_run_dir(config: ExperimentConfig, rank: int, resume: Path | None) -> Path:
    """Rank 0 creates the run directory (or checks the resumed one) and tells the others."""
    box: list[object] = [None]
    if rank == 0:
        if resume is not None:
            box[0] = str(open_run_dir(resume))
        else:
            path = create_run_dir(config.log.root, config.name, config.rule.name, config.seed)
            atomic_write_text(path / CONFIG_FILE, dump_config(config))
            box[0] = str(path)
    dist.broadcast_object_list(box, src=0)
    return Path(str(box[0]))


def _boundaries(
    config: ExperimentConfig, stack: torch.nn.Module, x: torch.Tensor, rank: int
) -> list[int]:
    """Explicit boundaries from the config, else rank 0 balances measured costs for all."""
    if config.engine.boundaries is not None:
        return list(config.engine.boundaries)
    box: list[object] = [None]
    if rank == 0:
        costs = measure_block_costs(stack, x[: config.data.batch_size])  # type: ignore[arg-type]
        box[0] = balanced_boundaries(costs, config.engine.stages)
        log.info("block costs %s s -> stage boundaries %s", [f"{c:.4f}" for c in costs], box[0])
    dist.broadcast_object_list(box, src=0)
    return list(box[0])  # type: ignore[call-overload]


def _meta(config: ExperimentConfig, engine: StageEngine) -> dict[str, object]:
    return collect_meta(
        {
            "engine": "staged",
            "backend": dist.get_backend(),
            "world_size": engine.world_size,
            "threads": torch.get_num_threads(),
            "schedule": config.engine.schedule,
            "stages": [[r.start, r.stop] for r in engine.partition],
            "parameters": sum(p.numel() for p in engine.exp.stack.parameters()),
            "blocks": len(engine.exp.stack),
        }
    )
