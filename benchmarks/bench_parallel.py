"""Samples/s of layer-parallel training (StageEngine, one process per stage) against one process.

For each rule: the 1-process LocalEngine with 1 thread and with K threads, and the StageEngine
with K stages of one thread each, on a stack of K equal-cost blocks (Linear 1024x1024 + ReLU,
the classifier joined to the last stage). The schedule follows the rule's wiring: ``gpipe``
for gradient wirings (pipeline-parallel backprop), ``pipelined`` for forward-only wirings,
``decoupled`` for delayed-gradient wirings (DNI; ``--schedule delayed`` for DDG; also
``naive``, the update-locked schedule, beside it), ``naive`` otherwise; ``--schedule all``
measures every staged schedule that serves the rule (from the registry). Every case runs in
freshly spawned processes (gloo on loopback) and reports, after a warm-up:

- steady-state samples/s: each stage's own window (its post-warm-up steps over the time they
  took, first step's start to last step's end); the pipeline's rate is the slowest stage's.
  The pipeline's fill and drain (K - 1 steps) are outside the windows, so a short run is not
  charged for them; ``samples_per_second_span`` (earliest start to latest end) is beside it;
- each stage's busy share (time in its steps not blocked waiting for another stage) and its
  CPU milliseconds per step (``time.process_time``: every thread of the process, gloo's too);
- the mean and largest ``staleness`` term, where the schedule logs one.

``--repeats N`` measures each rule's cases N times over (round after round, so a slow spell
of a noisy machine spreads over all of them) and reports each case's median round
(by samples/s; every round's samples/s is kept in ``samples_per_second_rounds``), and the
ratios against the median one-thread run.

``profile_rank`` / ``profile_out`` in a case write a cProfile (CPU time) of that rank's steps.

    python -m benchmarks.bench_parallel --stages 2 --rules backprop dgl [--steps 60]
    python -m benchmarks.bench_parallel --stages 2 --rules ddg --schedule delayed
    python -m benchmarks.bench_parallel --stages 4 --rules dni --schedule all
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchmarks.common import environment, write_result
from beyond_backprop.config import build_experiment_config
from beyond_backprop.config.engine import EngineConfig
from beyond_backprop.data import DatasetSplits, TensorSplit
from beyond_backprop.engines.local import LocalEngine, StageEngine
from beyond_backprop.engines.schedules import check_schedule, schedule_names
from beyond_backprop.engines.trainer import Trainer
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules import RULES, default_wirings
from beyond_backprop.rules.base import Batch

WIDTH = 1024


RULE_OPTIONS: dict[str, dict[str, Any]] = {"local_parallel": {"overlap": 1}}
"""Options that give a rule its layer-parallel form (local updates: with the overlap)."""


def schedules_for(rule: str, stages: int, rule_options: dict[str, Any] | None = None) -> list[str]:
    """Every staged schedule that serves the rule's wiring (with ``rule_options``), from the
    schedule registry: a new schedule is measured without naming it here."""
    cls = RULES.get(rule)
    wiring = cls(cls.Config(**(rule_options or {}))).wiring
    return [
        name
        for name in schedule_names(staged=True)
        if check_schedule(EngineConfig(stages=stages, schedule=name), rule, wiring, {}) is None
    ]


def schedule_for(rule: str) -> str:
    backward = default_wirings()[rule].backward
    schedules = {"gradient": "gpipe", "none": "pipelined", "delayed_gradient": "decoupled"}
    return schedules.get(backward, "naive")


def make_config(
    rule: str,
    stages: int,
    batch: int,
    threads: int,
    microbatches: int,
    schedule: str,
    model: dict[str, Any] | None = None,
    rule_options: dict[str, Any] | None = None,
    world: int = 1,
    engine_options: dict[str, Any] | None = None,
) -> Any:
    """K equal blocks; ``world`` processes (1: the LocalEngine, with the lockstep step);
    ``engine_options``: more ``engine`` keys (e.g. ``staleness``)."""
    engine = {"stages": world, "threads": threads, "microbatches": microbatches,
              "schedule": schedule if world > 1 else "naive", **(engine_options or {})}  # fmt: skip
    return build_experiment_config(
        {
            "data": {"name": "synthetic", "batch_size": batch},
            "model": model or {"arch": "mlp", "hidden": [WIDTH] * stages},
            "rule": {"name": rule, **(rule_options or {})},
            "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "schedule": "constant"},
            "engine": engine,
        }
    )  # fmt: skip


def fake_data(n: int) -> DatasetSplits:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 32, 32, generator=generator)
    split = TensorSplit(x, torch.randint(0, 10, (n,), generator=generator))
    return DatasetSplits("fake", split, split.head(64), 10)


def run_case(rank: int, world: int, store: str, out: str, case: dict[str, Any]) -> None:
    threads = case["threads"]
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    config = make_config(
        case["rule"], case["stages"], case["batch"], threads, case["microbatches"],
        case.get("schedule") or schedule_for(case["rule"]), case.get("model"),
        case.get("rule_options"), world, case.get("engine_options"),
    )  # fmt: skip
    data = fake_data(case["batch"] * case["steps"])
    experiment = build_experiment(config, data)
    if world > 1:
        # 16 processes on 2 cores start slowly: room for the slowest to join
        timeout = datetime.timedelta(seconds=300)
        dist.init_process_group(
            "gloo", init_method=f"file://{store}", rank=rank, world_size=world, timeout=timeout
        )
        engine: Trainer = StageEngine(experiment, list(range(1, case["stages"])))
        dist.barrier()
    else:
        engine = LocalEngine(experiment)
    engine.trace()
    cpu: list[float] = []
    staleness: list[float] = []
    x_all, y_all = data.train.x, data.train.y
    profile = cProfile.Profile(time.process_time) if case.get("profile_rank") == rank else None
    if profile is not None:
        profile.enable()
    for step in range(case["steps"]):
        rows = slice(step * case["batch"], (step + 1) * case["batch"])
        started = time.process_time()  # this process's CPU, every thread (gloo's included)
        terms = engine.train_step(Batch(x_all[rows], y_all[rows]), epoch=0)
        cpu.append(time.process_time() - started)
        if step >= case["warmup"]:
            staleness.extend(v for (_, name), v in terms.items() if name == "staleness")
        engine.step += 1
    if profile is not None:
        profile.disable()
        profile.dump_stats(case["profile_out"])
    if world > 1:
        engine.stepper.close()
        dist.barrier()
    channel = engine.stepper.stage.channel if world > 1 else None
    record: dict[str, Any] = {
        "rank": rank,
        "trace": list(engine.steps_traced or []),
        "waits": list(channel.waits or []) if channel is not None else [],
        "cpu": cpu,
        "staleness": staleness,
    }
    if world > 1:
        dist.destroy_process_group()
    torch.save(record, f"{out}.{rank}")


def measure(case: dict[str, Any]) -> dict[str, Any]:
    """Spawn the case's processes (K stages, or one process) and summarise their records."""
    world = case["stages"] if case["engine"] == "staged" else 1
    with tempfile.TemporaryDirectory() as folder:
        store, out = str(Path(folder) / "store"), str(Path(folder) / "out")
        mp.start_processes(
            run_case, args=(world, store, out, case), nprocs=world, start_method="spawn"
        )
        records = [torch.load(f"{out}.{r}", weights_only=False) for r in range(world)]
    return summarise(records, case["warmup"], case["batch"])


def summarise(records: list[dict[str, Any]], warmup: int, batch: int) -> dict[str, Any]:
    """Steady-state figures from each rank's trace of (step, start, end) times.

    Each stage's own window runs from the start of its first step after the warm-up to the
    end of its last step; its rate is its post-warm-up samples over that window, and the
    pipeline's rate (``samples_per_second``) is the slowest stage's: in steady state no
    stage can run faster for long than the one it waits for. The fill and drain of the
    pipeline (a later stage starts its first step K - 1 steps after the first stage) are
    outside every window, so they do not count against a short run.
    ``samples_per_second_span`` is the other reading, from the earliest window start to the
    latest window end over all stages, which charges the drain to the run.
    """
    windows = []
    for record in records:
        steps = [(a, b) for s, a, b in record["trace"] if s >= warmup]
        windows.append((steps[0][0], steps[-1][1], len(steps)))
    rates = [n * batch / (end - start) for start, end, n in windows]
    span = max(end for _, end, _ in windows) - min(start for start, _, _ in windows)
    result: dict[str, Any] = {
        "samples_per_second": min(rates),
        "stage_samples_per_second": rates,
        "samples_per_second_span": windows[0][2] * batch / span,
        "seconds": max(end - start for start, end, _ in windows),
        "cpu_ms_per_step": [
            1000 * sum(r["cpu"][warmup:]) / max(1, len(r["cpu"][warmup:])) for r in records
        ],
    }
    stale = [v for r in records for v in r["staleness"]]
    if stale:
        result["staleness_mean"] = sum(stale) / len(stale)
        result["staleness_max"] = max(stale)
    if len(records) > 1:
        result["stage_busy_share"] = [
            _busy(r, start, end) / (end - start)
            for r, (start, end, _) in zip(records, windows, strict=True)
        ]
        origin = min(a for r in records for _, a, _ in r["trace"])
        result["timeline"] = [
            {"rank": r["rank"], "steps": [(s, a - origin, b - origin) for s, a, b in r["trace"]],
             "waits": [(a - origin, b - origin) for a, b in r["waits"]]}
            for r in records
        ]  # fmt: skip
    return result


def _busy(record: dict[str, Any], start: float, end: float) -> float:
    """Seconds of ``[start, end]`` the stage spent in its steps and not blocked waiting."""

    def overlap(spans: list[tuple[float, float]]) -> float:
        return sum(min(b, end) - max(a, start) for a, b in spans if b > start and a < end)

    return overlap([(a, b) for _, a, b in record["trace"]]) - overlap(record["waits"])


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median samples/s (the lower one of an even count), with every
    round's samples/s beside it."""
    ordered = sorted(rounds, key=lambda figures: figures["samples_per_second"])
    chosen = ordered[(len(ordered) - 1) // 2]
    return {**chosen, "samples_per_second_rounds": [f["samples_per_second"] for f in rounds]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, nargs="+", default=[2])
    parser.add_argument("--rules", nargs="+", default=["backprop", "dgl"])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--microbatches", type=int, default=4)
    parser.add_argument("--machine", default="cpu2")
    parser.add_argument("--repeats", type=int, default=1, help="rounds; the median is kept")
    parser.add_argument(
        "--schedule",
        nargs="+",
        default=None,
        help="the staged schedules (default: chosen by the rule's wiring; 'all': every "
        "staged schedule that serves the rule, to find its best; several names: each of them "
        "that serves the rule)",
    )
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for k in args.stages:
        for rule in args.rules:
            options = RULE_OPTIONS.get(rule)
            common = {"rule": rule, "stages": k, "batch": args.batch, "steps": args.steps,
                      "warmup": args.warmup, "microbatches": args.microbatches,
                      "rule_options": options}  # fmt: skip
            runs: list[tuple[str, int, str | None]] = [("local", 1, None), ("local", k, None)]
            serving = schedules_for(rule, k, options)
            if args.schedule == ["all"]:
                runs += [("staged", 1, name) for name in serving]
            elif args.schedule:
                runs += [("staged", 1, name) for name in args.schedule if name in serving]
            else:
                runs.append(("staged", 1, schedule_for(rule)))
                if default_wirings()[rule].stale_ok:
                    runs.append(("staged", 1, "async"))
                if default_wirings()[rule].backward == "delayed_gradient":
                    runs.append(("staged", 1, "naive"))  # the update-locked form beside it
            cases = [{**common, "engine": engine, "threads": threads, "schedule": schedule}
                     for engine, threads, schedule in runs]  # fmt: skip
            rounds = [[measure(case) for case in cases] for _ in range(args.repeats)]
            for i, case in enumerate(cases):
                figures = median_round([r[i] for r in rounds])
                engine, threads, schedule = case["engine"], case["threads"], case["schedule"]
                how = f"local x{threads}" if engine == "local" else f"{schedule} x{k}"
                label = f"{rule} {how}"
                busy = figures.get("stage_busy_share")
                shown = f", busy {[round(b, 2) for b in busy]}" if busy else ""
                speed = figures["samples_per_second"]
                if engine == "local" and threads == 1:
                    one_thread = speed
                ratio = f" ({speed / one_thread:.2f}x 1 process, 1 thread)"
                spread = figures["samples_per_second_rounds"]
                shown += f", rounds {[round(r) for r in spread]}" if len(spread) > 1 else ""
                print(f"K={k} {label:28s} {speed:9.1f} samples/s{ratio}{shown}", flush=True)
                rows.append({**case, "label": label, **figures})
    record = {
        "benchmark": "parallel",
        "args": vars(args),
        "environment": environment(),
        "rows": rows,
    }
    print(f"wrote {write_result('parallel', args.machine, record)}")


if __name__ == "__main__":
    main()
