"""Run StageEngine experiments in spawned processes (gloo, ``file://`` store) for tests."""

from __future__ import annotations

import datetime
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from beyond_backprop.config import ExperimentConfig
from beyond_backprop.engines.local import LocalEngine, StageEngine
from beyond_backprop.experiment import Experiment, build_experiment, seed_everything
from beyond_backprop.models import BlockStack
from beyond_backprop.rules.base import BlockContext, LearningRule, LocalLoss, Objective, Wiring


class LinearHeads(LearningRule):
    """A forward-only test rule: every block below the top learns through its own linear
    head (DGL's shape, kept here so engine tests do not depend on a rule's file)."""

    @dataclass(frozen=True)
    class Config:
        pass

    default_wiring: ClassVar[Wiring] = Wiring(backward="none", stale_ok=True)

    def build_locals(self, stack: BlockStack) -> list[nn.Module | None]:
        heads: list[nn.Module | None] = [
            nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(s).prod()), 4))
            for s in stack.output_shapes[:-1]
        ]
        return [*heads, None]

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        logits = ctx.h_out if ctx.local is None else ctx.local(ctx.h_out)
        return LocalLoss({"loss": F.cross_entropy(logits, ctx.batch.y)})


def experiment_for(config: ExperimentConfig, forward_only: bool) -> Experiment:
    experiment = build_experiment(config)
    if forward_only:
        experiment.rule = LinearHeads(LinearHeads.Config())
        seed_everything(config.seed + 1)
        experiment.locals = experiment.rule.build_locals(experiment.stack)
    return experiment


def _worker(
    rank: int, world: int, store: str, out: str, body: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=10))  # fmt: skip
        result = body(rank, *args)
        torch.save({"ok": True, "result": result}, f"{out}.{rank}")
    except BaseException as error:  # reported to the test, which asserts on it
        torch.save({"ok": False, "error": f"{type(error).__name__}: {error}",
                    "trace": traceback.format_exc()}, f"{out}.{rank}")  # fmt: skip
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn(
    tmp_path: Path, body: Callable[..., Any], *args: Any, world: int = 2, timeout: float = 60
) -> list[dict[str, Any]]:
    """Run ``body(rank, *args)`` on ``world`` ranks; returns each rank's outcome (a process
    that died without reporting gives ``{"ok": False, "exitcode": n}``)."""
    store, out = str(tmp_path / "store"), str(tmp_path / "out")
    context = mp.start_processes(_worker, args=(world, store, out, body, args), nprocs=world,
                                 join=False, start_method="spawn")  # fmt: skip
    for process in context.processes:
        process.join(timeout)
    outcomes = []
    for rank, process in enumerate(context.processes):
        if process.is_alive():
            process.kill()
        path = f"{out}.{rank}"
        if os.path.exists(path):
            outcomes.append(torch.load(path, weights_only=False))
        else:
            outcomes.append({"ok": False, "exitcode": process.exitcode})
    return outcomes


def train_staged(
    rank: int, config: ExperimentConfig, forward_only: bool, boundaries: list[int]
) -> dict[str, Any]:
    """A whole staged run; rank 0 returns the gathered parameters."""
    engine = StageEngine(experiment_for(config, forward_only), boundaries)
    engine.train()
    return gathered(engine, rank)


def gathered(engine: StageEngine, rank: int) -> dict[str, Any]:
    """Every stage's parameters, gathered: rank 0 returns them, the others nothing."""
    engine.stepper.gather_parameters()
    if rank != 0:
        return {}
    return {
        "stack": engine.exp.stack.state_dict(),
        "locals": engine.exp.locals_container.state_dict(),
    }


def train_local(config: ExperimentConfig, forward_only: bool) -> dict[str, Any]:
    torch.set_num_threads(1)
    engine = LocalEngine(experiment_for(config, forward_only))
    engine.train()
    return {
        "stack": engine.exp.stack.state_dict(),
        "locals": engine.exp.locals_container.state_dict(),
    }


def stopped_and_resumed(
    rank: int, cfg: ExperimentConfig, run_dir: str, pending: Callable[[Any], Any]
) -> dict[str, Any]:
    """Train to step 5 and stop (checkpointing), resume from the checkpoint in a new engine
    and train to the end; returns ``pending(schedule)`` of the resumed schedule (what it
    had in flight) and rank 0's gathered stack and local modules."""
    from beyond_backprop.tracking.checkpoint import load_latest_checkpoint
    from beyond_backprop.tracking.recorder import RunRecorder
    from beyond_backprop.tracking.run_dir import state_file_name

    first = StageEngine(experiment_for(cfg, False), [1])
    first.recorder = RunRecorder(Path(run_dir), 2, rank=rank, barrier=dist.barrier)
    first.should_stop = lambda: first.step >= 5
    first.train()
    loaded = load_latest_checkpoint(Path(run_dir), file_name=state_file_name(rank))
    assert loaded is not None
    second = StageEngine(experiment_for(cfg, False), [1])
    second.load_state_dict(loaded[1])
    held = pending(second.stepper.schedule)
    second.train()
    second.stepper.gather_parameters()
    return {"pending": held, "steps": second.step,
            "stack": second.exp.stack.state_dict() if rank == 0 else None,
            "locals": second.exp.locals_container.state_dict() if rank == 0 else None}  # fmt: skip
