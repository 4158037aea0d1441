"""``bbp compare --suite FILE``: run every rule of a suite and show them side by side."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from beyond_backprop.compare.execute import Outcome, run_suite
from beyond_backprop.compare.plots import plot_comparison
from beyond_backprop.compare.report import rows, write_reports
from beyond_backprop.compare.suite import load_suite
from beyond_backprop.errors import EXIT_RANK_FAILED, EXIT_SIGNAL_BASE

# a wide table even when the output is a file or a pipe (rich assumes 80 columns there)
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def compare(
    suite: Annotated[Path, typer.Option("--suite", help="A suite, e.g. configs/suites/quick.yaml")],
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default runs/compare/<suite>)")
    ] = None,
    force: Annotated[bool, typer.Option(help="Retrain runs that already exist")] = False,
) -> None:
    """Run every rule of a suite (1 process and staged where the suite asks) and report
    accuracy, gap to backprop, wall time, samples/s, speed-ups and peak memory."""
    folder = out or Path("runs") / "compare" / suite.stem
    loaded = load_suite(suite, folder / "runs")
    console.print(f"suite {loaded.name}: {len(loaded.variants)} runs -> {folder}", highlight=False)

    def done(outcome: Outcome) -> None:
        how = "reused" if outcome.reused else f"{outcome.wall_seconds or 0:.0f} s"
        status = (
            f"failed: {outcome.error}"
            if outcome.error
            else f"acc {_pct(outcome.summary.get('accuracy'))}"
        )
        console.print(f"  {outcome.variant.label}: {status} ({how})", highlight=False)

    try:
        outcomes = run_suite(loaded.variants, folder, force, done)
    except KeyboardInterrupt:  # Ctrl-C reached the run too: it stops with a checkpoint
        raise typer.Exit(EXIT_SIGNAL_BASE + signal.SIGINT) from None
    table = rows(outcomes)
    written = write_reports(table, folder) + plot_comparison(table, folder)
    console.print(render(table))
    console.print("wrote " + ", ".join(str(p) for p in written), highlight=False)
    if all(o.error for o in outcomes):  # some runs completed: their table is the result
        raise typer.Exit(EXIT_RANK_FAILED)


def render(table: list[dict[str, Any]]) -> Table:
    """The rich table of the comparison."""
    view = Table(title="bbp compare", header_style="bold")
    for name in (
        "run",
        "engine",
        "test acc",
        "gap",
        "wall s",
        "samples/s",
        "vs bp",
        "vs gpipe",
        "peak MiB",
    ):
        view.add_column(name, justify="left" if name in ("run", "engine") else "right")
    for row in table:
        if row["error"]:
            view.add_row(row["label"], row["engine"], f"[red]failed: {row['error']}[/red]")
            continue
        gap = row["gap_to_backprop"]
        view.add_row(
            row["label"], row["engine"], _pct(row["accuracy"]),
            "" if gap is None else f"{100 * gap:+.2f}",
            _num(row["wall_seconds"], 0), _num(row["samples_per_second"], 0),
            _num(row["speedup_vs_backprop"], 2, "x"), _num(row["speedup_vs_gpipe"], 2, "x"),
            _num(row["peak_rss_mb"], 0),
        )  # fmt: skip
    return view


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None, digits: int, suffix: str = "") -> str:
    return "" if value is None else f"{value:.{digits}f}{suffix}"
