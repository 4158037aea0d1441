"""Every registered rule against back-propagation on the same stack and batches: time per
training step and peak activation memory, as ratios to backprop, in one run.

Rules come from the registry with their default options, so a new rule gets a row by itself
(a rule that cannot run on this stack gets a row saying why). Each rule trains through the
``LocalEngine``; a rule whose training spans several phases (greedy's one block per epoch)
has its steps spread over all its epochs.

Activation memory on CPU: ``torch.autograd.graph.saved_tensors_hooks`` sees every tensor that
autograd saves for the backward pass; the benchmark keeps the live bytes of those tensors
(distinct storages, parameters excluded), released when autograd frees them, and reports the
peak over a step. Every rule runs the engine's synchronous step, which runs every block forward
before any backward pass, so every block's graph is alive at the peak, for local rules as for
backprop. A rule whose wiring is ``stale_ok`` gets a second row, ``[block at a time]``: forward,
objective and backward of one block before the next block runs (``engine.schedule: async``
with buffers of size 1 and in-order updates: the same updates as the synchronous step), the
schedule that keeps one block's graph alive at a time.

Per block: each saved tensor is charged to the block (or the block's local module) whose
forward pass was running when autograd saved it; a block's figure is the peak of its own live
bytes over a step (the blocks' peaks need not fall at the same moment, so they may add up to
more than the step's peak).

``--arch`` picks the network: ``cnn`` (the small CNN above, ``--depth`` conv blocks) or one of
the papers' architectures (``resnet20``, ``resnet32``, ``resnet56``, ``vgg11``, ``vgg16``,
``cifar_cnn``); ``--data`` the shape of the fabricated batches (``mnist-shaped`` 1x28x28 or
``cifar10-shaped`` 3x32x32, 10 classes; timings do not depend on the pixel values).

    python -m benchmarks.bench_rules [--rounds 5] [--steps 8] [--threads 2] [--depth 6]
    python -m benchmarks.bench_rules --arch resnet32 --data cifar10-shaped
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import traceback
from typing import Any

import torch

from benchmarks.bench_overhead import fake_mnist
from benchmarks.common import environment, write_result
from beyond_backprop.config import build_experiment_config
from beyond_backprop.data import DatasetSplits
from beyond_backprop.data.base import TensorSplit
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules import RULES
from beyond_backprop.rules.base import Batch

ARCHS: dict[str, dict[str, Any]] = {
    "resnet20": {"arch": "resnet", "depth": 20},
    "resnet32": {"arch": "resnet", "depth": 32},
    "resnet56": {"arch": "resnet", "depth": 56},
    "vgg11": {"arch": "vgg", "depth": 11},
    "vgg16": {"arch": "vgg", "depth": 16},
    "cifar_cnn": {"arch": "cifar_cnn"},
}
"""The papers' architectures at their published sizes (``cnn`` is built from ``--depth``)."""


def fake_cifar10(n: int) -> DatasetSplits:
    """Random tensors of CIFAR-10's shape."""
    generator = torch.Generator().manual_seed(0)
    split = TensorSplit(
        torch.randn(n, 3, 32, 32, generator=generator),
        torch.randint(0, 10, (n,), generator=generator),
    )
    return DatasetSplits("fake-cifar10", split, split, 10)


DATA = {"mnist-shaped": fake_mnist, "cifar10-shaped": fake_cifar10}


class SavedTensorMeter:
    """Live bytes of the tensors autograd saves for backward, and their peak, in all and per
    block (``block``: the block whose forward pass is running, set by hooks)."""

    def __init__(self, exclude: set[int]) -> None:
        self.exclude = exclude  # storages of parameters: weights are not activations
        self.live: dict[int, list[int]] = {}  # storage -> [bytes, references, block]
        self.current = 0
        self.peak = 0
        self.block = -1
        self.block_current: dict[int, int] = {}
        self.block_peak: dict[int, int] = {}

    def pack(self, tensor: torch.Tensor) -> Any:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in self.exclude or storage.nbytes() == 0:
            return tensor
        if key in self.live:
            self.live[key][1] += 1
        else:
            size, block = storage.nbytes(), self.block
            self.live[key] = [size, 1, block]
            self.current += size
            self.peak = max(self.peak, self.current)
            self.block_current[block] = self.block_current.get(block, 0) + size
            self.block_peak[block] = max(self.block_peak.get(block, 0), self.block_current[block])
        return _Saved(self, key, tensor)

    def release(self, key: int) -> None:
        entry = self.live[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            self.block_current[entry[2]] -= entry[0]
            del self.live[key]

    def enter(self, block: int) -> Any:
        """A forward pre-hook that charges what is saved from now on to ``block``."""

        def hook(module: torch.nn.Module, args: Any) -> None:
            self.block = block

        return hook

    @staticmethod
    def unpack(saved: Any) -> torch.Tensor:
        return saved.tensor if isinstance(saved, _Saved) else saved


class _Saved:
    """A saved tensor whose release (when autograd frees the graph) the meter hears about."""

    def __init__(self, meter: SavedTensorMeter, key: int, tensor: torch.Tensor) -> None:
        self.meter, self.key, self.tensor = meter, key, tensor

    def __del__(self) -> None:
        self.meter.release(self.key)


def _engine(rule: str, data: DatasetSplits, args: argparse.Namespace, block: bool) -> LocalEngine:
    engine: dict[str, Any] = {"threads": args.threads}
    if block:
        engine.update(schedule="async", replay={"size": 1, "order": "in_order"})
    config = build_experiment_config(
        {
            "data": {"name": "synthetic", "batch_size": args.batch_size},
            "model": ARCHS.get(args.arch)
            or {
                "arch": "cnn",
                "channels": [32] * args.depth,
                "pool": [k in (1, 3) for k in range(args.depth)],
                "fc_width": 256,
            },
            "rule": {"name": rule},
            "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "schedule": "constant"},
            "train": {"epochs": 1},
            "engine": engine,
        }
    )
    return LocalEngine(build_experiment(config, data))


def _steps(engine: LocalEngine, batches: list[Batch]) -> None:
    epochs = engine.epochs
    for i, batch in enumerate(batches):
        engine.train_step(batch, epoch=i % epochs)  # every phase of a multi-phase rule
        engine.step += 1


def _peak(engine: LocalEngine, batches: list[Batch]) -> tuple[int, list[int]]:
    """The step's peak of saved bytes, and each block's own peak."""
    exp = engine.exp
    params = [*exp.stack.parameters(), *exp.locals_container.parameters()]
    meter = SavedTensorMeter({p.untyped_storage().data_ptr() for p in params})
    owners = [*enumerate(exp.stack.blocks), *((k, m) for k, m in enumerate(exp.locals) if m)]
    # every submodule: a rule may call a part of its local module (a synthesizer's net)
    handles = [
        sub.register_forward_pre_hook(meter.enter(k)) for k, m in owners for sub in m.modules()
    ]
    try:
        with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
            _steps(engine, batches)
    finally:
        for handle in handles:
            handle.remove()
    return meter.peak, [meter.block_peak.get(k, 0) for k in range(len(exp.stack))]


def measure(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    torch.set_num_threads(args.threads)
    data = DATA[args.data](args.batch_size * args.steps)
    batches = [
        Batch(
            data.train.x[i * args.batch_size : (i + 1) * args.batch_size],
            data.train.y[i * args.batch_size : (i + 1) * args.batch_size],
        )
        for i in range(args.steps)
    ]
    engines: dict[str, LocalEngine] = {}
    rows: dict[str, dict[str, Any]] = {}

    def skip(name: str, error: Exception) -> None:  # a rule that cannot run here: say why
        engines.pop(name, None)
        rows[name] = {"skipped": traceback.format_exception_only(error)[-1].strip()}

    for name in RULES.names():
        try:
            engines[name] = _engine(name, data, args, block=False)
            _steps(engines[name], batches)  # warm-up, and a check that the rule runs here
            if engines[name].exp.rule.wiring.stale_ok:
                label = f"{name} [block at a time]"
                engines[label] = _engine(name, data, args, block=True)
                _steps(engines[label], batches)
        except Exception as error:
            skip(name, error)
    timings: dict[str, list[float]] = {label: [] for label in engines}
    for r in range(args.rounds):  # interleaved rounds: machine noise hits every rule alike
        labels = list(engines) if r % 2 == 0 else list(reversed(engines))
        for label in labels:
            if label not in engines:
                continue
            started = time.perf_counter()
            try:
                _steps(engines[label], batches)
            except Exception as error:
                skip(label, error)
                continue
            timings[label].append((time.perf_counter() - started) / len(batches))
    for label, engine in list(engines.items()):
        try:
            peak, per_block = _peak(engine, batches[:2])
        except Exception as error:
            skip(label, error)
            continue
        rows[label] = {
            "ms_per_step": 1000 * statistics.median(timings[label]),
            "peak_saved_bytes": peak,
            "peak_saved_bytes_per_block": per_block,
        }
    base = rows["backprop"]
    for row in rows.values():
        if "ms_per_step" in row:
            row["time_ratio"] = row["ms_per_step"] / base["ms_per_step"]
            row["memory_ratio"] = row["peak_saved_bytes"] / base["peak_saved_bytes"]
    return dict(sorted(rows.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--arch", default="cnn", choices=["cnn", *ARCHS])
    parser.add_argument("--data", default="mnist-shaped", choices=list(DATA))
    parser.add_argument("--depth", type=int, default=6, help="cnn: conv blocks (+ classifier)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--machine", default="cpu2", help="a short machine label for the file name")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rows = measure(args)
    for name, row in rows.items():
        if "skipped" in row:
            print(f"{name:34s} skipped: {row['skipped']}")
            continue
        print(
            f"{name:34s} {row['ms_per_step']:8.1f} ms/step  time x{row['time_ratio']:.2f}  "
            f"peak activations {row['peak_saved_bytes'] / 2**20:7.1f} MiB  "
            f"memory x{row['memory_ratio']:.2f}"
        )
        blocks = " ".join(f"{b / 2**20:.1f}" for b in row["peak_saved_bytes_per_block"])
        print(f"{'':34s} MiB per block: {blocks}")
    record = {"benchmark": "rules", "args": vars(args), "environment": environment(), "rules": rows}
    if not args.no_write:
        print(f"wrote {write_result('rules', args.machine, record)}")
    else:
        print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
