"""The comparison's pictures: learning curves, accuracy against wall time, per-block accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from beyond_backprop.tracking.metrics import read_metrics
from beyond_backprop.tracking.run_dir import RunDir


def eval_curve(run_dir: Path) -> list[tuple[float, float]]:
    """(step, accuracy) of the network's prediction at each evaluation of a run."""
    path = RunDir(run_dir).metrics()
    if not path.is_file():
        path = RunDir(run_dir).metrics(0)  # a staged run: rank 0 evaluates
    if not path.is_file():
        return []
    return [
        (r["step"], r["value"])
        for r in read_metrics(path)
        if r["split"] in ("test", "validation") and r["block"] is None and r["name"] == "accuracy"
    ]


def _axes() -> tuple[Any, Any]:
    """A figure whose lines cycle through 20 colours (a suite has more than 10 runs)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])
    return fig, ax


def plot_comparison(table: list[dict[str, Any]], out: Path) -> list[Path]:
    """Write the three PNGs; returns their paths."""
    done = [row for row in table if row["accuracy"] is not None]
    paths = [
        out / "learning_curves.png",
        out / "accuracy_vs_time.png",
        out / "per_block_accuracy.png",
    ]
    fig, ax = _axes()
    for row in done:
        curve = eval_curve(Path(row["run_dir"]))
        if curve:
            ax.plot(*zip(*curve, strict=True), marker="o", label=row["label"])
    ax.set(xlabel="training step", ylabel="test accuracy", title="Learning curves")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    fig, ax = _axes()
    for row in done:
        if row["wall_seconds"] is not None:
            ax.scatter(row["wall_seconds"], row["accuracy"])
            ax.annotate(row["label"], (row["wall_seconds"], row["accuracy"]), fontsize=7)
    ax.set(xlabel="wall time (s)", ylabel="test accuracy", title="Accuracy against wall time")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    fig, ax = _axes()
    for row in done:
        blocks = row.get("per_block_accuracy") or {}
        if blocks:
            keys = sorted(blocks)
            ax.plot(keys, [blocks[k] for k in keys], marker="o", label=row["label"])
    ax.set(
        xlabel="block", ylabel="accuracy of the block's own prediction", title="Per-block accuracy"
    )
    if ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths
