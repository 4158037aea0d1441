"""Terminal output for training: a rich progress bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import os
import sys
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


def interactive(console: Console) -> bool:
    """Whether to draw live progress: a terminal, and not under CI."""
    return console.is_terminal and not os.environ.get("CI")


class TrainingProgress:
    """The engine's ``Progress``: a bar per run on a terminal; one line per evaluation always."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.live = enabled and interactive(console)
        self._bar: Progress | None = None
        self._task: TaskID | None = None

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

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def on_step(self, step: int, total: int, epoch: int) -> None:
        """Advance the bar."""
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
