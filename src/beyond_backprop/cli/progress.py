"""Terminal output for training: a rich progress bar on a terminal, plain lines elsewhere;
for ``bbp compare``, run k of N, the current run's progress and the time left."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from beyond_backprop.compare.execute import PROGRESS_ENV
from beyond_backprop.tracking.atomic import atomic_write_text


def interactive(console: Console) -> bool:
    """Whether to draw live progress: a terminal, and not under CI."""
    return console.is_terminal and not os.environ.get("CI")


class _Bar:
    """What the progress displays share: a rich bar, stopped when the ``with`` block ends."""

    _bar: Progress | None = None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()


class TrainingProgress(_Bar):
    """The engine's ``Progress``: a bar per run on a terminal; one line per evaluation always."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.live = enabled and interactive(console)
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        # a run that bbp compare started reports its step to the file it names
        report = os.environ.get(PROGRESS_ENV)
        self._report = Path(report) if report else None
        self._reported = 0.0

    def __enter__(self) -> TrainingProgress:
        if self.live:
            self._bar = Progress(
                TextColumn("epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.start()
        return self

    def on_step(self, step: int, total: int, epoch: int) -> None:
        """Advance the bar (and the progress file, at most every 0.2 s and at the end)."""
        now = time.monotonic()
        if self._report is not None and (now - self._reported > 0.2 or step == total):
            atomic_write_text(self._report, f"{step} {total}\n")
            self._reported = now
        if self._bar is None:
            return
        if self._task is None:
            self._task = self._bar.add_task("train", total=total, completed=step, epoch=epoch + 1)
        self._bar.update(self._task, completed=step, epoch=epoch + 1)

    def on_eval(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        """One line with the evaluation's figures."""
        parts = [f"epoch {epoch + 1}", f"step {step}"]
        if "accuracy" in metrics:
            parts.append(f"acc {100 * metrics['accuracy']:.2f}%")
        if "loss" in metrics:
            parts.append(f"loss {metrics['loss']:.4f}")
        blocks = [k for k in metrics if k.endswith("/accuracy")]
        if blocks:
            per_block = " ".join(f"{100 * metrics[k]:.1f}" for k in blocks)
            parts.append(f"per-block acc {per_block}")
        self.console.print("  ".join(parts), highlight=False)
        sys.stdout.flush()


class CompareProgress(_Bar):
    """``bbp compare``'s progress: on a terminal two bars (runs done of N, with the time left
    estimated from the runs trained so far and the current run's pace; the current run's steps
    and its time left); elsewhere one line as each run starts."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.total = total
        self.live = interactive(console)
        self._bar: Progress | None = None
        self._suite: TaskID | None = None
        self._run: TaskID | None = None

    def __enter__(self) -> CompareProgress:
        if self.live:
            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                console=self.console, transient=True,
            )  # fmt: skip
            self._bar.start()
            self._suite = self._bar.add_task("runs done", total=self.total)
        return self

    def start(self, index: int, label: str) -> Callable[[tuple[int, int] | None], None]:
        """Run ``index`` (0-based) begins; returns the callback for its (step, total)."""
        line = f"run {index + 1} of {self.total}: {label}"
        if self._bar is None:
            self.console.print(line, highlight=False)
            sys.stdout.flush()
            return lambda progress: None
        bar, suite = self._bar, self._suite
        assert suite is not None
        bar.update(suite, completed=index)
        if self._run is not None:
            bar.remove_task(self._run)
        run = self._run = bar.add_task(line, total=None)

        def poll(progress: tuple[int, int] | None) -> None:
            if progress is not None:
                step, total = progress
                bar.update(run, completed=step, total=total)
                bar.update(suite, completed=index + step / max(total, 1))

        return poll

    def done(self, text: str) -> None:
        """A finished run's line (above the bars)."""
        self.console.print(text, highlight=False)
