"""DFA's shared random projection against one projection per block, and fa / dfa against
backprop per training step.

Part 1 times the projection alone, ``e B`` for every hidden block of a model: ``shared`` is one
matmul with the widest block's matrix, sliced per block (arXiv 2006.12878); ``per_block`` is
one matmul per block with its own B_k (arXiv 1609.01596). Part 2 times a whole LocalEngine step
of ``backprop``, ``fa``, ``dfa`` (shared) and ``dfa`` (per_block) on the same model, batches and
optimizer, and counts the bytes autograd saves for backward during a step (unique storages,
parameters and buffers left out: the activation memory). Everything runs
interleaved in one process, rounds alternating, medians reported.

    python -m benchmarks.bench_dfa_projection [--arch mlp cnn] [--rounds 7] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.bench_overhead import fake_mnist
from benchmarks.common import environment, write_result
from beyond_backprop.config import build_experiment_config
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules.base import Batch

MODELS = {
    "mlp": {"arch": "mlp", "hidden": [1024, 1024, 1024]},
    "cnn": {"arch": "cnn", "channels": [32, 64, 128], "pool": [True, True, False]},
}
RULES: dict[str, dict[str, Any]] = {
    "backprop": {"name": "backprop"},
    "fa": {"name": "fa"},
    "dfa_shared": {"name": "dfa", "projection": "shared"},
    "dfa_per_block": {"name": "dfa", "projection": "per_block"},
}


def interleaved(loops: dict[str, Callable[[], None]], rounds: int, per: int) -> dict[str, float]:
    """Median seconds per call of each loop (``per`` calls per timing), rounds alternating."""
    for loop in loops.values():
        loop()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in loops}
    names = list(loops)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            started = time.perf_counter()
            loops[name]()
            times[name].append((time.perf_counter() - started) / per)
    return {name: statistics.median(values) for name, values in times.items()}


def projection(arch: str, batch: int, rounds: int, reps: int) -> dict[str, Any]:
    """Part 1: the projections alone, for the hidden-block widths of ``arch``."""
    stack = build_experiment(config(arch, RULES["backprop"], batch, 2), fake_mnist(batch)).stack
    widths = [math.prod(shape) for shape in stack.output_shapes[:-1]]
    error = torch.randn(batch, 10)
    shared = torch.randn(10, max(widths))
    per_block = [torch.randn(10, w) for w in widths]

    def run_shared() -> None:
        for _ in range(reps):
            p = error @ shared
            [p[:, :w] for w in widths]

    def run_per_block() -> None:
        for _ in range(reps):
            [error @ b for b in per_block]

    t = interleaved({"shared": run_shared, "per_block": run_per_block}, rounds, reps)
    return {
        "widths": widths,
        "shared_us": 1e6 * t["shared"],
        "per_block_us": 1e6 * t["per_block"],
        "speedup": t["per_block"] / t["shared"],
        "shared_B_elements": 10 * max(widths),
        "per_block_B_elements": 10 * sum(widths),
    }


def config(arch: str, rule: dict[str, Any], batch: int, threads: int) -> Any:
    return build_experiment_config(
        {
            "data": {"name": "synthetic", "batch_size": batch},
            "model": MODELS[arch],
            "rule": rule,
            "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "schedule": "constant"},
            "engine": {"threads": threads},
        }
    )


def saved_bytes(engine: LocalEngine, batch: Batch) -> int:
    """Bytes of the unique storages autograd saves for backward during one step, leaving out
    parameters and buffers (they exist whether saved or not): the activation memory."""
    modules = [engine.exp.stack, engine.exp.locals_container]
    persistent = {
        t.untyped_storage().data_ptr() for m in modules for t in [*m.parameters(), *m.buffers()]
    }
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in persistent:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        engine.train_step(batch, epoch=0)
    return sum(seen.values())


def steps(arch: str, batch: int, rounds: int, n: int, threads: int) -> dict[str, Any]:
    """Part 2: whole training steps of each rule on the same model and batches."""
    data = fake_mnist(batch * n)
    batches = [
        Batch(data.train.x[i * batch : (i + 1) * batch], data.train.y[i * batch : (i + 1) * batch])
        for i in range(n)
    ]
    engines = {
        name: LocalEngine(build_experiment(config(arch, rule, batch, threads), data))
        for name, rule in RULES.items()
    }

    def loop(engine: LocalEngine) -> Callable[[], None]:
        def run() -> None:
            for b in batches:
                engine.train_step(b, epoch=0)

        return run

    t = interleaved({name: loop(e) for name, e in engines.items()}, rounds, n)
    memory = {name: saved_bytes(e, batches[0]) for name, e in engines.items()}
    return {
        name: {
            "ms_per_step": 1000 * t[name],
            "time_ratio_to_backprop": t[name] / t["backprop"],
            "saved_MiB": memory[name] / 2**20,
            "memory_ratio_to_backprop": memory[name] / memory["backprop"],
        }
        for name in engines
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(MODELS), nargs="+", default=sorted(MODELS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--reps", type=int, default=500, help="projections per timing")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--machine", default="cpu2", help="a short machine label for the file name")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for arch in args.arch:
        proj = projection(arch, args.batch_size, args.rounds, args.reps)
        step = steps(arch, args.batch_size, args.rounds, args.steps, args.threads)
        results[arch] = {"projection": proj, "steps": step}
        print(
            f"{arch}: projection shared {proj['shared_us']:.1f} us, per_block "
            f"{proj['per_block_us']:.1f} us (x{proj['speedup']:.2f}); B elements "
            f"{proj['shared_B_elements']} vs {proj['per_block_B_elements']}"
        )
        for name, f in step.items():
            print(
                f"  {name:14s} {f['ms_per_step']:8.2f} ms/step"
                f"  time x{f['time_ratio_to_backprop']:.3f}"
                f"  saved {f['saved_MiB']:.1f} MiB  memory x{f['memory_ratio_to_backprop']:.3f}"
            )
    record = {
        "benchmark": "dfa_projection",
        "args": vars(args),
        "environment": environment(),
        "results": results,
    }
    if args.no_write:
        print(json.dumps(record, indent=2))
    else:
        print(f"wrote {write_result('dfa_projection', args.machine, record)}")


if __name__ == "__main__":
    main()
