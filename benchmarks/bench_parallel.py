"""Samples/s of layer-parallel training (StageEngine, one process per stage) against one process.

For each rule: the 1-process LocalEngine with 1 thread and with K threads, and the StageEngine
with K stages of one thread each, on a stack of K equal-cost blocks (Linear 1024x1024 + ReLU,
the classifier joined to the last stage). The schedule follows the rule's wiring: ``gpipe``
for gradient wirings (pipeline-parallel backprop), ``pipelined`` for forward-only wirings,
``decoupled`` for delayed-gradient wirings (DNI; ``--schedule delayed`` for DDG; also
``naive``, the update-locked schedule, beside it), ``naive`` otherwise. Every case runs in
freshly spawned processes (gloo on loopback), times the steps after a warm-up, and reports
each stage's busy and idle (waiting) share.

    python -m benchmarks.bench_parallel --stages 2 --rules backprop dgl [--steps 60]
    python -m benchmarks.bench_parallel --stages 2 --rules ddg --schedule delayed
"""

from __future__ import annotations

import argparse
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
from beyond_backprop.data import DatasetSplits, TensorSplit
from beyond_backprop.engines.local import LocalEngine, StageEngine
from beyond_backprop.engines.trainer import Trainer
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules import default_wirings
from beyond_backprop.rules.base import Batch

WIDTH = 1024


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
) -> Any:
    """K equal blocks; ``world`` processes (1: the LocalEngine, with the lockstep step)."""
    engine = {"stages": world, "threads": threads, "microbatches": microbatches,
              "schedule": schedule if world > 1 else "naive"}  # fmt: skip
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
        case.get("rule_options"), world,
    )  # fmt: skip
    data = fake_data(case["batch"] * case["steps"])
    experiment = build_experiment(config, data)
    if world > 1:
        timeout = datetime.timedelta(seconds=120)
        dist.init_process_group(
            "gloo", init_method=f"file://{store}", rank=rank, world_size=world, timeout=timeout
        )
        engine: Trainer = StageEngine(experiment, list(range(1, case["stages"])))
        engine.trace()
        dist.barrier()
    else:
        engine = LocalEngine(experiment)
    marks = []
    x_all, y_all = data.train.x, data.train.y
    for step in range(case["steps"]):
        rows = slice(step * case["batch"], (step + 1) * case["batch"])
        marks.append(time.perf_counter())
        engine.train_step(Batch(x_all[rows], y_all[rows]), epoch=0)
        engine.step += 1
    if world > 1:
        engine.stepper.close()
        dist.barrier()
    ended = time.perf_counter()
    record: dict[str, Any] = {"rank": rank, "start": marks[case["warmup"]], "end": ended}
    if world > 1:
        staged: StageEngine = engine  # type: ignore[assignment]
        window = [(s, a, b) for s, a, b in staged.steps_traced or [] if s >= case["warmup"]]
        channel = staged.stepper.stage.channel
        waits = [(a, b) for a, b in channel.waits or [] if a >= window[0][1]]
        record.update(
            start=window[0][1],
            busy=sum(b - a for _, a, b in window) - sum(b - a for a, b in waits),
            trace=[(s, a, b) for s, a, b in staged.steps_traced or []],
            waits=list(channel.waits or []),
        )
        dist.destroy_process_group()
    torch.save(record, f"{out}.{rank}")


def measure(case: dict[str, Any]) -> dict[str, Any]:
    world = case["stages"] if case["engine"] == "staged" else 1
    with tempfile.TemporaryDirectory() as folder:
        store, out = str(Path(folder) / "store"), str(Path(folder) / "out")
        mp.start_processes(
            run_case, args=(world, store, out, case), nprocs=world, start_method="spawn"
        )
        records = [torch.load(f"{out}.{r}", weights_only=False) for r in range(world)]
    start = min(r["start"] for r in records)
    end = max(r["end"] for r in records)
    samples = (case["steps"] - case["warmup"]) * case["batch"]
    result = {"samples_per_second": samples / (end - start), "seconds": end - start}
    if world > 1:
        result["stage_busy_share"] = [r["busy"] / (end - start) for r in records]
        result["timeline"] = [
            {"rank": r["rank"], "steps": [(s, a - start, b - start) for s, a, b in r["trace"]],
             "waits": [(max(a, start) - start, b - start) for a, b in r["waits"] if b > start]}
            for r in records
        ]  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, nargs="+", default=[2])
    parser.add_argument("--rules", nargs="+", default=["backprop", "dgl"])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--microbatches", type=int, default=4)
    parser.add_argument("--machine", default="cpu2")
    parser.add_argument(
        "--schedule",
        default=None,
        help="the staged schedule (default: chosen by the rule's wiring)",
    )
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for k in args.stages:
        for rule in args.rules:
            common = {"rule": rule, "stages": k, "batch": args.batch, "steps": args.steps,
                      "warmup": args.warmup, "microbatches": args.microbatches}  # fmt: skip
            staged = args.schedule or schedule_for(rule)
            runs = [("local", 1, None), ("local", k, None), ("staged", 1, staged)]
            if default_wirings()[rule].stale_ok:
                runs.append(("staged", 1, "async"))
            if default_wirings()[rule].backward == "delayed_gradient":
                runs.append(("staged", 1, "naive"))  # the update-locked form beside it
            for engine, threads, schedule in runs:
                case = {**common, "engine": engine, "threads": threads, "schedule": schedule}
                figures = measure(case)
                how = f"local x{threads}" if engine == "local" else f"{schedule} x{k}"
                label = f"{rule} {how}"
                busy = figures.get("stage_busy_share")
                shown = f", busy {[round(b, 2) for b in busy]}" if busy else ""
                speed = figures["samples_per_second"]
                print(f"K={k} {label:28s} {speed:9.1f} samples/s{shown}", flush=True)
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
