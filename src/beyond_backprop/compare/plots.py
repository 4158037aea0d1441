"""The comparison's pictures: learning curves (one panel per rule family), accuracy against
training time, per-block accuracy.

Every figure gives each rule the same colour (staged runs dashed, with another marker, so a
staged run that trains exactly like its one-process run shows as a dashed line over the solid
one), puts the legend outside the axes, and names the suite, dataset and budget in its title.
Learning curves are in epochs of the run's own schedule, one panel per family: rules whose
blocks exchange the same signal (``Wiring.backward``), so the rules that train block by block
do not stretch the axis of the others.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from beyond_backprop.config import load_config
from beyond_backprop.rules import RULES
from beyond_backprop.tracking.metrics import read_metrics
from beyond_backprop.tracking.run_dir import RunDir

FAMILIES = {
    "gradient": "true or feedback gradients, blocking",
    "output_error": "output error broadcast to every block",
    "delayed_gradient": "synthetic or delayed gradients",
    "overlap": "local losses, one-block overlap",
    "none": "local losses only",
}
"""Panel titles, by what a rule sends down between blocks (``Wiring.backward``)."""
FILES = ("learning_curves.png", "accuracy_vs_time.png", "per_block_accuracy.png")


def eval_curve(run_dir: Path) -> list[tuple[float, float]]:
    """(epoch, accuracy) of the network's prediction at each evaluation of a run; the epoch
    is the step over the run's steps per epoch (from its summary)."""
    run = RunDir(run_dir)
    path = run.metrics() if run.metrics().is_file() else run.metrics(0)  # staged: rank 0
    if not path.is_file():
        return []
    per_epoch = _steps_per_epoch(run)
    return [
        (r["step"] / per_epoch, r["value"])
        for r in read_metrics(path)
        if r["split"] in ("test", "validation") and r["block"] is None and r["name"] == "accuracy"
    ]


def _steps_per_epoch(run: RunDir) -> float:
    if not run.summary.is_file():
        return 1.0
    summary = json.loads(run.summary.read_text())
    epochs, steps = summary.get("epochs") or 0, summary.get("total_steps") or 0
    return steps / epochs if epochs and steps else 1.0


def family(row: dict[str, Any]) -> str:
    """A row's panel: what its rule's blocks send down, with the run's own options (a rule
    not registered in this process: its name)."""
    rule = row["rule"]
    if rule not in RULES:
        return str(rule)
    config = RunDir(Path(row["run_dir"])).config
    options = load_config(config).rule.options if config.is_file() else None
    cls = RULES.get(rule)
    return str(cls(options or cls.Config()).wiring.backward)


def colours(table: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One colour per rule, the same in every figure (rules in order of first appearance)."""
    rules = list(dict.fromkeys(row["rule"] for row in table))
    cmap = plt.get_cmap("tab20" if len(rules) > 10 else "tab10")
    return {rule: cmap(i % cmap.N) for i, rule in enumerate(rules)}


def style(row: dict[str, Any], palette: dict[str, Any]) -> dict[str, Any]:
    """The line style of a row: its rule's colour; staged runs dashed with square markers."""
    staged = row["engine"] != "1 process"
    return {"color": palette[row["rule"]], "linestyle": "--" if staged else "-",
            "marker": "s" if staged else "o", "label": row["label"]}  # fmt: skip


def plot_comparison(table: list[dict[str, Any]], out: Path, title: str = "") -> list[Path]:
    """Write the three PNGs; returns their paths. ``title``: the suite, dataset and budget."""
    done = [row for row in table if row["accuracy"] is not None]
    palette = colours(table)
    figures = [
        learning_curves(done, palette, title),
        accuracy_vs_time(done, palette, title),
        per_block_accuracy(done, palette, title),
    ]
    paths = [out / name for name in FILES]
    for fig, path in zip(figures, paths, strict=True):
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
    return paths


def learning_curves(rows: list[dict[str, Any]], palette: dict[str, Any], title: str) -> Figure:
    """Test accuracy over epochs, one panel per family, each with its legend beside it."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(family(row), []).append(row)
    names = [f for f in FAMILIES if f in groups] + [f for f in groups if f not in FAMILIES]
    fig, axes = plt.subplots(len(names) or 1, 1, figsize=(8, 2.6 * max(len(names), 1)),
                             squeeze=False)  # fmt: skip
    for ax, name in zip(axes[:, 0], names, strict=False):
        for row in groups[name]:
            curve = eval_curve(Path(row["run_dir"]))
            if curve:
                ax.plot(*zip(*curve, strict=True), markersize=3, **style(row, palette))
        ax.set(title=FAMILIES.get(name, name), xlabel="epoch", ylabel="test accuracy")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.suptitle(f"Learning curves: {title}" if title else "Learning curves")
    fig.tight_layout()
    return fig


def accuracy_vs_time(rows: list[dict[str, Any]], palette: dict[str, Any], title: str) -> Figure:
    """Test accuracy against training time (the training loop only: no start-up, no
    evaluation; a staged run's slowest stage)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for row in rows:
        if row.get("train_seconds") is not None:
            s = style(row, palette)
            ax.scatter(row["train_seconds"], row["accuracy"], color=s["color"], marker=s["marker"],
                       label=s["label"])  # fmt: skip
    ax.set(xlabel="training time (s; without start-up and evaluation)", ylabel="test accuracy",
           title=f"Accuracy against training time: {title}" if title else "Accuracy against "
           "training time")  # fmt: skip
    if ax.collections:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def per_block_accuracy(rows: list[dict[str, Any]], palette: dict[str, Any], title: str
                       ) -> Figure:  # fmt: skip
    """Each block's own prediction (auxiliary heads, probes), on integer block ticks."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for row in rows:
        blocks = row.get("per_block_accuracy") or {}
        if blocks:
            points = sorted((int(k), v) for k, v in blocks.items())
            ax.plot(*zip(*points, strict=True), **style(row, palette))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="block", ylabel="accuracy of the block's own prediction",
           title=f"Per-block accuracy: {title}" if title else "Per-block accuracy")  # fmt: skip
    if ax.lines:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig
