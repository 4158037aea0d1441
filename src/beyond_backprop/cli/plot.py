"""``bbp plot``: metrics of runs over steps, or a grid of a dataset's training images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from beyond_backprop.errors import ConfigError


def plot(
    runs: Annotated[
        list[Path] | None,
        typer.Argument(help="Run directories (runs/<name>/<stamp>_<rule>_s<seed>)"),
    ] = None,
    metric: Annotated[
        str, typer.Option("--metric", help="A logged metric: accuracy, loss, grad_angle, ...")
    ] = "accuracy",
    split: Annotated[
        str | None, typer.Option("--split", help="Only this split: train, test, validation, diag")
    ] = None,
    samples: Annotated[
        str | None, typer.Option("--samples", help="Draw training images of this dataset instead")
    ] = None,
    count: Annotated[int, typer.Option("--count", help="How many images (--samples)")] = 64,
    root: Annotated[
        str | None, typer.Option("--root", help="The dataset's folder, when not the default")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="The PNG file to write")] = Path(
        "plot.png"
    ),
) -> None:
    """Plot a metric of one or more runs over steps (one line per run and block), or with
    --samples DATASET a grid of its training images."""
    from beyond_backprop.eval.plots import plot_metric, plot_samples

    if samples is not None:
        if runs:
            raise ConfigError(["bbp plot: give run directories or --samples DATASET, not both"])
        if count < 1:
            raise ConfigError([f"bbp plot: --count {count} is invalid: must be >= 1"])
        written = plot_samples(samples, out, count, root)
    elif not runs:
        raise ConfigError(["bbp plot needs run directories (or --samples DATASET)"])
    else:
        missing = [str(run) for run in runs if not run.is_dir()]
        if missing:
            raise ConfigError([f"bbp plot: not a directory: {m}" for m in missing])
        written = plot_metric(runs, metric, out, split)
    typer.echo(f"wrote {written}")
