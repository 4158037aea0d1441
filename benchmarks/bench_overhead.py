"""The LocalEngine's training step against a bare hand-written PyTorch loop.

Same model (the same initial parameters), same batches, same optimizer; the two loops run
interleaved in one process, round after round, so machine noise hits both alike. Reports
the median time per step of each and their ratio (engine / bare).

    python benchmarks/bench_overhead.py [--arch mlp|cnn] [--rounds 7] [--steps 30]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks.common import environment, write_result
from beyond_backprop.config import build_experiment_config
from beyond_backprop.data import DatasetSplits, TensorSplit
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules.base import Batch

MODELS = {
    "mlp": {"arch": "mlp", "hidden": [1024, 1024, 1024]},
    "cnn": {"arch": "cnn", "channels": [32, 64, 128], "pool": [True, True, False]},
}


def fake_mnist(n: int) -> DatasetSplits:
    """Random tensors of MNIST's shape (timings do not depend on the pixel values)."""
    generator = torch.Generator().manual_seed(0)
    split = TensorSplit(
        torch.randn(n, 1, 28, 28, generator=generator),
        torch.randint(0, 10, (n,), generator=generator),
    )
    return DatasetSplits("fake-mnist", split, split, 10)


def measure(arch: str, rounds: int, steps: int, batch_size: int, threads: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    config = build_experiment_config(
        {
            "data": {"name": "synthetic", "batch_size": batch_size},
            "model": MODELS[arch],
            "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "schedule": "constant"},
            "engine": {"threads": threads},
        }
    )
    data = fake_mnist(batch_size * steps)
    experiment = build_experiment(config, data)
    engine = LocalEngine(experiment)
    bare_model = copy.deepcopy(experiment.stack)
    bare_optimizer = torch.optim.SGD(bare_model.parameters(), lr=0.01, momentum=0.9)
    batches = [
        (
            data.train.x[i * batch_size : (i + 1) * batch_size],
            data.train.y[i * batch_size : (i + 1) * batch_size],
        )
        for i in range(steps)
    ]

    def bare() -> None:
        for x, y in batches:
            bare_optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(bare_model(x), y).backward()
            bare_optimizer.step()

    def ours() -> None:
        for x, y in batches:
            engine.train_step(Batch(x, y), epoch=0)
            engine.step += 1

    timings: dict[str, list[float]] = {"bare": [], "engine": []}
    bare()
    ours()  # warm-up: allocator, first-call costs
    for r in range(rounds):
        order = (
            [("bare", bare), ("engine", ours)] if r % 2 == 0 else [("engine", ours), ("bare", bare)]
        )
        for name, loop in order:
            started = time.perf_counter()
            loop()
            timings[name].append((time.perf_counter() - started) / steps)
    bare_s, engine_s = statistics.median(timings["bare"]), statistics.median(timings["engine"])
    return {
        "bare_ms_per_step": 1000 * bare_s,
        "engine_ms_per_step": 1000 * engine_s,
        "ratio": engine_s / bare_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(MODELS), nargs="+", default=sorted(MODELS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--machine", default="cpu2", help="a short machine label for the file name")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    results = {
        arch: measure(arch, args.rounds, args.steps, args.batch_size, args.threads)
        for arch in args.arch
    }
    for arch, figures in results.items():
        print(
            f"{arch}: bare {figures['bare_ms_per_step']:.2f} ms/step, "
            f"engine {figures['engine_ms_per_step']:.2f} ms/step, ratio {figures['ratio']:.3f}"
        )
    record = {
        "benchmark": "overhead",
        "args": vars(args),
        "environment": environment(),
        "results": results,
    }
    if not args.no_write:
        print(f"wrote {write_result('overhead', args.machine, record)}")
    else:
        print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
