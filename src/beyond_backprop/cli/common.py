"""What the ``bbp`` commands share: the consoles, the stop flag and the run summary line."""

from __future__ import annotations

from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


class StopFlag:
    """Set by SIGTERM/SIGINT; the engine stops at the next step boundary with a checkpoint."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum


def summary_line(summary: dict[str, Any], run_dir: Path) -> str:
    """One line for a finished run: test accuracy, training time and speed, its directory."""
    accuracy = summary.get("accuracy")
    shown = "n/a" if accuracy is None else f"{100 * accuracy:.2f}%"
    return (
        f"test accuracy {shown} | train time {summary['train_seconds']:.1f} s "
        f"({summary['samples_per_second']:.0f} samples/s) | run {run_dir}"
    )
