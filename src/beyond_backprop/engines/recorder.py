"""What an engine reports to, so it knows nothing about files or terminals."""

from __future__ import annotations

from typing import Any, Protocol


class Recorder(Protocol):
    """Receives metrics and checkpoints from an engine (``tracking.RunRecorder`` writes them)."""

    def log(
        self,
        *,
        step: int,
        epoch: int,
        block: int | None,
        split: str | None,
        name: str,
        value: float,
    ) -> None:
        """One metric record."""
        ...

    def save_checkpoint(self, step: int, state: dict[str, Any]) -> None:
        """A complete, resumable training state at a step boundary."""
        ...


class Progress(Protocol):
    """Told after every step and every evaluation (the CLI draws a progress bar from it)."""

    def on_step(self, step: int, total: int, epoch: int) -> None:
        """A step finished."""
        ...

    def on_eval(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        """An evaluation finished."""
        ...
