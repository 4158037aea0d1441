"""PNG plots of logged metrics over steps, and grids of a dataset's training images.

Drawn with matplotlib's Agg canvas directly (no pyplot): no display, no global state.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from beyond_backprop.errors import ConfigError, did_you_mean
from beyond_backprop.tracking.metrics import Record, read_metrics
from beyond_backprop.tracking.run_dir import RunDir

Series = dict[str, list[tuple[int, float]]]


def run_records(run_dir: Path) -> list[Record]:
    """Every record of a run: ``metrics.jsonl``, or all ``metrics.rank*.jsonl`` of a staged run."""
    files = RunDir(run_dir).metrics_files()
    if not files:
        raise ConfigError([f"{run_dir}: no metrics.jsonl (is it a run directory?)"])
    return [record for path in files for record in read_metrics(path)]


def metric_series(runs: Sequence[Path], metric: str, split: str | None = None) -> Series:
    """Points (step, value) of ``metric`` per line: one line per (run, split, block).

    Labels name the run (its experiment name, or its directory when names repeat) only when
    there are several runs, the split only when ``split`` is not
    given and the metric appears in several, and the block (``net`` for the network's own).
    """
    per_run = {run: run_records(run) for run in runs}
    found = {r["name"] for records in per_run.values() for r in records}
    if metric not in found:
        choices = sorted(found)
        raise ConfigError(
            [
                f"metric {metric!r} is not logged in {', '.join(map(str, runs))}"
                f"{did_you_mean(metric, choices)}; logged: {', '.join(choices)}"
            ]
        )
    keep = [
        (run, r)
        for run, records in per_run.items()
        for r in records
        if r["name"] == metric and (split is None or r["split"] == split)
    ]
    if not keep:
        splits = sorted({r["split"] for rs in per_run.values() for r in rs if r["name"] == metric})
        raise ConfigError(
            [f"metric {metric!r} has no split {split!r}; it has: {', '.join(splits)}"]
        )
    several_splits = len({r["split"] for _, r in keep}) > 1
    # a run is named by its experiment name (runs/<name>/<stamp>) unless two runs share it
    names = {run: run.resolve().parent.name for run in runs}
    if len(set(names.values())) < len(runs):
        names = {run: run.resolve().name for run in runs}
    series: Series = defaultdict(list)
    for run, r in keep:
        parts = [names[run]] if len(runs) > 1 else []
        if several_splits:
            parts.append(r["split"])
        parts.append("net" if r["block"] is None else f"block {r['block']}")
        series[" ".join(parts)].append((int(r["step"]), float(r["value"])))
    return {label: sorted(points) for label, points in sorted(series.items())}


def plot_metric(runs: Sequence[Path], metric: str, out: Path, split: str | None = None) -> Path:
    """Draw ``metric`` over steps, one line per run / split / block, into ``out`` (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series = metric_series(runs, metric, split)
    figure = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label, points in series.items():
        steps, values = zip(*points, strict=True)
        axes.plot(steps, values, label=label, marker="." if len(points) < 30 else None)
    axes.set_xlabel("step")
    axes.set_ylabel(metric)
    axes.set_title(f"{metric}" + (f" ({split})" if split else ""))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", ncol=2 if len(series) > 6 else 1)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    return out


def _as_images(x: Tensor) -> Tensor:
    """(N, C, H, W) in [0, 1], each image scaled by its own range; flat inputs made square."""
    if x.dim() == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise ConfigError([f"cannot draw flat inputs of {x.shape[1]} features as images"])
        x = x.reshape(-1, 1, side, side)
    if x.dim() != 4:
        raise ConfigError([f"cannot draw inputs of shape {tuple(x.shape[1:])} as images"])
    low = x.amin(dim=(1, 2, 3), keepdim=True)
    high = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - low) / (high - low).clamp_min(1e-12)


def plot_samples(dataset: str, out: Path, count: int = 64, root: str | None = None) -> Path:
    """A grid of the first ``count`` training images of a registered dataset, with labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from beyond_backprop.data import DATASETS, DataConfig

    if dataset not in DATASETS:
        raise ConfigError([DATASETS.unknown_message(dataset)])
    config = DataConfig(name=dataset, train_limit=count, test_limit=1, normalize=False, root=root)
    split = DATASETS.get(dataset)(config).train
    images = _as_images(split.x[:count].float())
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    figure = Figure(figsize=(1.2 * columns, 1.3 * rows), dpi=100)
    FigureCanvasAgg(figure)
    for i, (image, label) in enumerate(zip(images, split.y[: len(images)], strict=True)):
        axes = figure.add_subplot(rows, columns, i + 1)
        pixels = image.permute(1, 2, 0)
        if pixels.shape[2] == 1:
            axes.imshow(pixels[:, :, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        else:
            axes.imshow(pixels[:, :, :3].numpy())
        axes.set_title(str(int(label)), fontsize=8)
        axes.axis("off")
    figure.suptitle(f"{dataset}: first {len(images)} training images (label above)")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    return out


__all__ = ["metric_series", "plot_metric", "plot_samples", "run_records"]
