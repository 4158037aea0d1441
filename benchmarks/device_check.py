"""The GPU check's measurements (``scripts/device_check.sh`` runs this): every rule's smoke
preset trained briefly on the device in fp32 and bf16 (finite losses, accuracy against
chance), and one-process samples/s of every rule on the device against the CPU with
``--cpu-threads`` threads. ``--device cpu`` runs the same on the CPU (the fallback mode).

``python -m benchmarks.device_check --device cuda --out DIR [--steps 40] [--cpu-threads 16]``
writes ``DIR/device_check.json`` and prints one line per run.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import environment
from beyond_backprop.config import ExperimentConfig, load_config
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules import RULES
from beyond_backprop.rules.base import Batch

SMOKE = Path(__file__).parents[1] / "configs" / "smoke"


def preset(rule: str, device: str, precision: str, steps: int, threads: int) -> ExperimentConfig:
    return load_config(SMOKE / f"{rule}.yaml", [
        f"engine.device={device}", f"engine.precision={precision}", f"engine.threads={threads}",
        f"train.max_steps={steps}", "train.epochs=100", "log.progress=false",
    ])  # fmt: skip


def short_training(rule: str, device: str, precision: str, steps: int) -> dict[str, Any]:
    """Train ``steps`` steps in this process; accuracy on the preset's test split."""
    config = preset(rule, device, precision, steps, threads=1)
    experiment = build_experiment(config).to(torch.device(device))
    engine = LocalEngine(experiment)
    summary = engine.train()
    accuracy = summary["accuracy"]
    chance = 1 / experiment.data.num_classes
    return {
        "rule": rule, "device": device, "precision": precision, "steps": summary["steps"],
        "accuracy": accuracy, "chance": chance,
        "above_chance": accuracy is not None and accuracy > chance,
        "finite": all(math.isfinite(v) for v in summary["eval"].values()),
        "peak_device_memory_mb": summary["peak_device_memory_mb"],
    }  # fmt: skip


def samples_per_second(rule: str, device: str, threads: int, steps: int) -> float:
    """Steady-state samples/s of the one-process step (after 3 warm-up steps)."""
    torch.set_num_threads(threads)
    config = preset(rule, device, "fp32", steps, threads)
    experiment = build_experiment(config).to(torch.device(device))
    engine = LocalEngine(experiment)
    train = experiment.data.train
    size = config.data.batch_size
    batch = Batch(train.x[:size].to(device), train.y[:size].to(device))
    for _ in range(3):
        engine.train_step(batch, 0)
    seconds = engine.train_seconds
    for _ in range(steps):
        engine.train_step(batch, 0)
    return steps * size / (engine.train_seconds - seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--cpu-threads", type=int, default=16)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    trainings, speeds = [], []
    for rule in RULES.names():
        for precision in ("fp32", "bf16"):
            try:
                row = short_training(rule, args.device, precision, args.steps)
            except Exception as error:  # recorded, and the check goes on with the next rule
                row = {"rule": rule, "precision": precision, "error": repr(error)[:300]}
            trainings.append(row)
            print(json.dumps(row), flush=True)
        speed: dict[str, Any] = {"rule": rule}
        for device, threads in ((args.device, 1), ("cpu", args.cpu_threads)):
            try:
                speed[f"{device}_x{threads}"] = samples_per_second(rule, device, threads, 10)
            except Exception as error:
                speed[f"{device}_x{threads}_error"] = repr(error)[:300]
        speeds.append(speed)
        print(json.dumps(speed), flush=True)
    record = {"environment": environment(), "device": args.device,
              "trainings": trainings, "samples_per_second": speeds}  # fmt: skip
    (args.out / "device_check.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out / 'device_check.json'}")


if __name__ == "__main__":
    main()
