"""``bbp compare --suite FILE``: run every rule of a suite and show them side by side."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from beyond_backprop.cli.progress import CompareProgress
from beyond_backprop.compare.execute import Outcome, output_lock, run_suite
from beyond_backprop.compare.report import (
    HEADERS,
    LEGEND,
    cells,
    formatted,
    rows,
    write_reports,
)
from beyond_backprop.compare.speedups import staged_sentences
from beyond_backprop.compare.suite import Suite, load_suite
from beyond_backprop.errors import EXIT_RANK_FAILED, EXIT_SIGNAL_BASE

# a wide table even when the output is a file or a pipe (rich assumes 80 columns there)
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
# with --format markdown|csv|json only the table goes to stdout (to be piped); the rest here
notes = Console(stderr=True, soft_wrap=True)


def compare(
    suite: Annotated[Path, typer.Option("--suite", help="A suite, e.g. configs/suites/tiny.yaml")],
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default runs/compare/<suite>)")
    ] = None,
    force: Annotated[bool, typer.Option(help="Retrain runs that already exist")] = False,
    format_: Annotated[
        Literal["table", "markdown", "csv", "json"],
        typer.Option("--format", help="How to print the result: table, markdown, csv or json"),
    ] = "table",
) -> None:
    """Run every rule of a suite (one process, and staged where the suite asks) and report
    test accuracy, gap to backprop, times, throughput, speed-ups and peak memory; also
    writes compare.csv, compare.json, compare.md and three PNG plots into the output folder.
    The suite file format is described in docs/extending.md."""
    # imported here: every bbp command imports this module, and matplotlib takes a while
    from beyond_backprop.compare.plots import plot_comparison

    folder = out or Path("runs") / "compare" / suite.stem
    loaded = load_suite(suite, folder / "runs")
    info = console if format_ == "table" else notes
    with output_lock(folder):
        info.print(f"suite {loaded.name}: {len(loaded.variants)} runs -> {folder}", highlight=False)
        with CompareProgress(info, len(loaded.variants)) as progress:

            def done(outcome: Outcome) -> None:
                progress.done(_done_line(outcome))

            try:
                outcomes = run_suite(
                    loaded.variants, folder, force, done,
                    lambda i, variant: progress.start(i, variant.label),
                )  # fmt: skip
            except KeyboardInterrupt as stop:  # the run stopped with a checkpoint
                signum = getattr(stop, "signum", signal.SIGINT)  # an in-process run's signal
                raise typer.Exit(EXIT_SIGNAL_BASE + signum) from None
        table = rows(outcomes)
        written = write_reports(table, folder) + plot_comparison(table, folder, title(loaded))
    if format_ == "table":
        console.print(render(table, title(loaded)))
        for line in staged_sentences(table):
            console.print(line, highlight=False)
        plots = [p for p in written if p.name.startswith("scaling")]
        for path in plots:  # the layer-parallel figure past this machine's cores
            console.print(f"scaling on simulated devices: {path}", highlight=False)
    else:
        typer.echo(formatted(table, format_), nl=False)
    info.print("wrote " + ", ".join(str(p) for p in written), highlight=False)
    if all(o.error for o in outcomes):  # some runs completed: their table is the result
        raise typer.Exit(EXIT_RANK_FAILED)


def title(suite: Suite) -> str:
    """The suite, its dataset and its budget (from the first run's config)."""
    config = suite.variants[0].config
    limit = config.data.train_limit
    examples = f", {limit} training examples" if limit else ""
    return f"suite {suite.name}, {config.data.name}{examples}, {config.train.epochs} epoch(s)"


def render(table: list[dict[str, Any]], caption: str = "") -> Table:
    """The rich table of the comparison."""
    view = Table(title=f"bbp compare: {caption}" if caption else "bbp compare",
                 header_style="bold", caption=LEGEND, caption_justify="left")  # fmt: skip
    for key, name in HEADERS.items():
        left = key in ("label", "engine")
        view.add_column(name, justify="left" if left else "right", no_wrap=key == "label")
    for row in table:
        values = cells(row)
        if row["error"]:
            values[2] = f"[red]{values[2]}[/red]"
        view.add_row(*values)
    return view


def _done_line(outcome: Outcome) -> str:
    how = "reused" if outcome.reused else f"{outcome.wall_seconds or 0:.0f} s"
    accuracy = outcome.summary.get("accuracy")
    shown = "n/a" if accuracy is None else f"{100 * accuracy:.2f}%"
    status = f"failed: {outcome.error}" if outcome.error else f"acc {shown}"
    return f"  {outcome.variant.label}: {status} ({how})"
