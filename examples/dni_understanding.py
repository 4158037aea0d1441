"""Checks of "Understanding Synthetic Gradients and Decoupled Neural Interfaces" (Czarnecki
et al., arXiv 1703.00522) with this library's ``dni`` / ``cdni`` rules; writes a PNG plot and a
JSON summary.

(a) Critical points are preserved (Section 3, the linear setting of Section 4): a two-layer
    linear network trained on the squared error with a *linear* label-conditioned synthesizer
    (cDNI, ``hidden_layers: 0``) reaches the same end-to-end linear map as gradient descent
    with back-propagation: the least-squares solution, computed here in closed form.
(b) The synthesizer's error and the cosine between synthetic and true gradient over training,
    per block, from the rule's diagnostics (``train.diagnostics_every``), for DNI and cDNI on
    an MLP.

    python -m examples.dni_understanding [--out DIR] [--dataset mnist] [--epochs 2]

Part (b) trains on real data (minutes on 2 cores); ``--dataset digits`` runs in seconds.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from beyond_backprop.config import build_experiment_config
from beyond_backprop.data import DatasetSplits, TensorSplit
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.experiment import Experiment, build_experiment, seed_everything
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules import RULES
from beyond_backprop.rules.base import Batch

log = logging.getLogger(__name__)


def linear_problem(n: int = 64, dim: int = 8, classes: int = 3, seed: int = 0) -> DatasetSplits:
    """A seeded regression onto one-hot targets: Gaussian inputs, labels from a random linear
    teacher (the targets are not a linear function of x, so the optimum has a residual)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=generator)
    y = (x @ torch.randn(dim, classes, generator=generator)).argmax(1)
    split = TensorSplit(x, y)
    return DatasetSplits("linear", split, split, classes)


def least_squares(data: DatasetSplits) -> torch.Tensor:
    """The optimum of the squared error onto one-hot targets over affine maps: [W | b]."""
    x = data.train.x.double()
    ones = torch.ones(x.shape[0], 1, dtype=x.dtype)
    design = torch.cat([x, ones], 1)
    target = F.one_hot(data.train.y, data.num_classes).double()
    return torch.linalg.lstsq(design, target).solution.T


def end_to_end(stack: BlockStack) -> torch.Tensor:
    """The affine map [W | b] a stack of Linear blocks computes."""
    weight = torch.eye(stack.input_shape[0], dtype=torch.float64)
    bias = torch.zeros(stack.input_shape[0], dtype=torch.float64)
    for block in stack.blocks:
        assert isinstance(block, nn.Linear)
        w, b = block.weight.detach().double(), block.bias.detach().double()
        weight, bias = w @ weight, w @ bias + b
    return torch.cat([weight, bias[:, None]], 1)


def linear_check(rule: str = "cdni", steps: int = 600, lr: float = 0.6) -> dict[str, Any]:
    """Train the linear network full-batch with ``rule`` (linear synthesizer, squared error)
    and with plain back-propagation from the same start; returns both curves of the relative
    distance of the end-to-end map to the least-squares optimum, and of the loss."""
    data = linear_problem()
    config = build_experiment_config(
        {
            "name": "linear-check",
            "seed": 0,
            "data": {"name": "synthetic", "batch_size": len(data.train.x)},
            "model": {"arch": "mlp", "hidden": [4]},  # replaced below by a linear stack
            "rule": {
                "name": rule,
                "hidden_layers": 0,
                "batch_norm": False,
                "loss": "mse",
                "synth_reduction": "sum",
            },
            "optim": {"name": "sgd", "lr": lr, "momentum": 0.0, "schedule": "constant"},
            "engine": {"threads": 1},
        }
    )
    seed_everything(0)
    dim, hidden = data.input_shape[0], 6
    stack = BlockStack([nn.Linear(dim, hidden), nn.Linear(hidden, data.num_classes)], (dim,))
    reference = copy.deepcopy(stack)
    rule_obj = RULES.get(rule)(config.rule.options)
    experiment = Experiment(config, data, stack, rule_obj, rule_obj.build_locals(stack), [])
    engine = LocalEngine(experiment)
    optimum = least_squares(data)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=lr)
    batch = Batch(data.train.x, data.train.y)
    synth = float("nan")
    target = F.one_hot(batch.y, data.num_classes).float()
    curves: dict[str, list[float]] = {k: [] for k in ("step", "sg_dist", "bp_dist", "sg_loss")}
    curves["bp_loss"] = []
    for step in range(steps + 1):
        if step % 25 == 0 or step == steps:
            curves["step"].append(step)
            for name, model in (("sg", stack), ("bp", reference)):
                distance = (end_to_end(model) - optimum).norm() / optimum.norm()
                with torch.no_grad():
                    loss = F.mse_loss(model(batch.x), target)
                curves[f"{name}_dist"].append(float(distance))
                curves[f"{name}_loss"].append(float(loss))
        if step == steps:
            break
        synth = engine.train_step(batch, 0)[(0, "synth")]
        engine.step += 1
        ref_opt.zero_grad()
        F.mse_loss(reference(batch.x), target).backward()
        ref_opt.step()
    with torch.no_grad():
        optimum_loss = F.mse_loss(
            torch.cat([batch.x, torch.ones(len(batch.x), 1)], 1).double() @ optimum.T,
            target.double(),
        )
    return {
        "rule": rule,
        "curves": curves,
        "optimum_loss": float(optimum_loss),
        "last_synth_loss": synth,
    }


class ListRecorder:
    """Keeps the engine's records in memory (no run directory)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def log(self, **record: Any) -> None:
        self.records.append(record)

    def save_checkpoint(self, step: int, state: dict[str, Any]) -> None:
        """Checkpoints are not needed here."""


def diagnostics_run(rule: str, dataset: str, epochs: int, every: int) -> dict[str, Any]:
    """Train an MLP with ``rule`` and keep its diagnostics (synthesizer error, cosine)."""
    limit = {"mnist": 10000, "digits": None}.get(dataset)
    config = build_experiment_config(
        {
            "name": f"diag-{rule}",
            "seed": 0,
            "data": {"name": dataset, "batch_size": 128, "train_limit": limit},
            "model": {"arch": "mlp", "hidden": [256, 256, 256], "batch_norm": True},
            "rule": {"name": rule, "width": 512, "synth_reduction": "sum"},
            "optim": {"name": "adam", "lr": 0.001, "schedule": "constant"},
            "train": {"epochs": epochs, "diagnostics_every": every, "log_every": every},
            "engine": {"threads": 2},
        }
    )
    recorder = ListRecorder()
    engine = LocalEngine(build_experiment(config), recorder=recorder)
    summary = engine.train()
    diag = [r for r in recorder.records if r["split"] == "diag"]
    return {"rule": rule, "accuracy": summary["accuracy"], "diag": diag}


def runs_from_dirs(paths: list[Path]) -> list[dict[str, Any]]:
    """Diagnostics of finished runs (``bbp train`` run directories): the rule's name from the
    run's config, the ``diag`` records from its ``metrics.jsonl``."""
    import yaml

    runs = []
    for path in paths:
        config = yaml.safe_load((path / "config.yaml").read_text())
        records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
        summary = json.loads((path / "summary.json").read_text())
        diag = [r for r in records if r["split"] == "diag"]
        runs.append({"rule": config["rule"]["name"], "accuracy": summary["accuracy"], "diag": diag})
    return runs


def plot(linear: dict[str, Any], runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    curves = linear["curves"]
    ax = axes[0]
    ax.semilogy(curves["step"], curves["bp_dist"], label="backprop")
    ax.semilogy(curves["step"], curves["sg_dist"], label=f"{linear['rule']} (linear SG)")
    ax.set(xlabel="step", ylabel="||[W|b] - LS optimum|| / ||optimum||")
    ax.set_title("(a) linear net, squared error: same solution")
    ax.legend()
    for ax, name, label in (
        (axes[1], "cos", "cosine(synthetic, true gradient)"),
        (axes[2], "synth_error", "synthesizer error vs true gradient"),
    ):
        for run in runs:
            blocks = sorted({r["block"] for r in run["diag"]})
            for block in blocks:
                points = [
                    (r["step"], r["value"])
                    for r in run["diag"]
                    if r["block"] == block and r["name"] == name
                ]
                xs, ys = zip(*points, strict=True)
                style = "-" if run["rule"] == "cdni" else "--"
                ax.plot(xs, ys, style, label=f"{run['rule']} block {block}")
        ax.set(xlabel="step", ylabel=label)
        ax.set_title(f"(b) {label}")
        if name == "synth_error":
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/methods"))
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "digits"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--linear-steps", type=int, default=600)
    parser.add_argument(
        "--runs",
        type=Path,
        nargs="*",
        help="plot (b) from these finished run directories (trained with "
        "train.diagnostics_every) instead of training two small runs",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    linear = linear_check("cdni", args.linear_steps)
    log.info(
        "linear: distance to LS optimum: backprop %.2e, cdni %.2e; loss %.6f / %.6f (optimum %.6f)",
        linear["curves"]["bp_dist"][-1],
        linear["curves"]["sg_dist"][-1],
        linear["curves"]["bp_loss"][-1],
        linear["curves"]["sg_loss"][-1],
        linear["optimum_loss"],
    )
    if args.runs:
        runs = runs_from_dirs(args.runs)
    else:
        runs = [
            diagnostics_run(rule, args.dataset, args.epochs, args.every) for rule in ("dni", "cdni")
        ]
    for run in runs:
        last = {(r["block"], r["name"]): r["value"] for r in run["diag"]}
        log.info("%s: accuracy %.4f, last diagnostics %s", run["rule"], run["accuracy"], last)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "runs" if args.runs else args.dataset
    png = args.out / f"dni_understanding_{tag}.png"
    plot(linear, runs, png)
    summary = {
        "linear": {k: v for k, v in linear.items() if k != "curves"}
        | {key: linear["curves"][key][-1] for key in linear["curves"]},
        "runs": [
            {"rule": r["rule"], "accuracy": r["accuracy"], "final": r["diag"][-4:]} for r in runs
        ],
        "run_dirs": [str(p) for p in args.runs or []],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "command": "python -m examples.dni_understanding " + " ".join(sys.argv[1:]),
    }
    json_path = png.with_suffix(".json")
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    log.info("wrote %s and %s", png, json_path)


if __name__ == "__main__":
    main()
