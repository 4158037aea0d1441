"""Masked inputs and their reconstructions from a finished ``inpaint`` or ``pretext`` run, as a
PNG: the original images, what the network sees (hidden pixels in red), and for every block
with a decoder its prediction pasted into the hidden region.

    python -m examples.reconstructions RUN_DIR --out docs/methods/inpaint_mnist.png [--n 8]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from torch import Tensor

from beyond_backprop.config import load_config
from beyond_backprop.errors import CheckpointError
from beyond_backprop.experiment import Experiment, build_experiment
from beyond_backprop.models.probes import ProbedLocal
from beyond_backprop.rules.base import Batch
from beyond_backprop.rules.reconstruction import ReconstructionHead
from beyond_backprop.tracking.checkpoint import load_latest_checkpoint
from beyond_backprop.tracking.run_dir import open_run_dir


def load_run(run_dir: str | Path, train_limit: int | None = None) -> tuple[Experiment, int]:
    """The run's experiment with the parameters of its latest checkpoint (blocks and local
    modules), in eval mode, and the checkpoint's step."""
    path = open_run_dir(run_dir)
    config = load_config(path / "config.yaml")
    loaded = load_latest_checkpoint(path)
    if loaded is None:
        raise CheckpointError(f"{path} has no checkpoint (checkpoints/latest)")
    step, state = loaded
    data = dataclasses.replace(config.data, train_limit=train_limit or config.data.train_limit)
    experiment = build_experiment(dataclasses.replace(config, data=data))
    experiment.stack.load_state_dict(state["model"])
    experiment.locals_container.load_state_dict(state["locals"])
    experiment.stack.eval()
    experiment.locals_container.eval()
    return experiment, step


def reconstructions(experiment: Experiment, x: Tensor, step: int = 0) -> dict[str, Tensor]:
    """``original``, ``input`` (what the network sees), ``hidden`` (bool) and ``block k``:
    block k's decoder output pasted into the region it is scored on."""
    rule, stack = experiment.rule, experiment.stack
    batch = rule.transform_batch(Batch(x, torch.zeros(len(x), dtype=torch.long)), step)
    if len(batch.views) != 3:
        raise ValueError(f"rule {type(rule).__name__} is not a reconstruction rule")
    target, weights, hidden = batch.views
    predicted = weights > 0  # the hidden pixels, and the overlap band when there is one
    out = {"original": target, "input": batch.x, "hidden": hidden}
    h = batch.x
    with torch.no_grad():
        for k, block in enumerate(stack.blocks[:-1]):
            h = block(h)
            local = experiment.locals[k]
            if isinstance(local, ProbedLocal) and isinstance(local.objective, ReconstructionHead):
                prediction = local.objective.decoder(h)
                out[f"block {k}"] = torch.where(predicted, prediction, batch.x)
    return out


def plot(images: dict[str, Tensor], path: Path, title: str) -> None:
    """One row per entry, one column per image; hidden pixels of the input drawn in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [key for key in images if key != "hidden"]
    n = images["original"].shape[0]
    grey = {key: images[key].mean(1) for key in rows}  # channel mean: (N, H, W)
    low, high = float(grey["original"].min()), float(grey["original"].max())
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n + 1.2, 1.15 * len(rows) + 0.4))
    for r, key in enumerate(rows):
        for i in range(n):
            ax = axes[r][i]
            picture = ((grey[key][i] - low) / (high - low)).clamp(0, 1)
            rgb = picture.unsqueeze(-1).repeat(1, 1, 3)
            if key == "input":
                rgb[images["hidden"][i, 0]] = torch.tensor([0.85, 0.2, 0.2])
            ax.imshow(rgb.numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(key, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished inpaint or pretext run directory")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--n", type=int, default=8, help="how many test images")
    parser.add_argument("--step", type=int, default=0, help="whose masks (random masks only)")
    args = parser.parse_args(argv)
    experiment, trained = load_run(args.run)
    x = experiment.data.test.x[: args.n]
    config = experiment.config
    title = (
        f"{config.rule.name} on {config.data.name} ({config.rule.options.mode}), test images, "
        f"after {trained} steps"
    )
    plot(reconstructions(experiment, x, args.step), args.out, title)
    return args.out


if __name__ == "__main__":
    print(main())
