"""``RunRecorder``: the engine's ``Recorder`` writing into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beyond_backprop.tracking.checkpoint import save_checkpoint
from beyond_backprop.tracking.metrics import MetricsWriter, metrics_file_name


class RunRecorder:
    """Appends metric records to ``metrics.jsonl`` and saves checkpoints under the run dir."""

    def __init__(self, run_dir: Path, keep_checkpoints: int, rank: int | None = None) -> None:
        self.run_dir = run_dir
        self.keep = keep_checkpoints
        self.rank = rank
        self.metrics = MetricsWriter(run_dir / metrics_file_name(rank))

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
        """Append one metric record."""
        self.metrics.log(step, epoch, name, value, block=block, split=split)

    def save_checkpoint(self, step: int, state: dict[str, Any]) -> None:
        """Save the state atomically and make it the latest checkpoint."""
        save_checkpoint(self.run_dir, step, state, keep=self.keep)

    def close(self) -> None:
        """Close the metrics file."""
        self.metrics.close()
