"""``RunRecorder``: the engine's ``Recorder`` writing into a run directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from beyond_backprop.tracking.checkpoint import commit_checkpoint, save_checkpoint
from beyond_backprop.tracking.metrics import MetricsWriter
from beyond_backprop.tracking.run_dir import metrics_file_name, state_file_name
from beyond_backprop.tracking.tensorboard import TensorBoardWriter


class RunRecorder:
    """Appends metric records to ``metrics.jsonl`` and saves checkpoints under the run dir.

    With ``tensorboard``, every record also goes to TensorBoard (``tracking.tensorboard``).
    In a staged run (``rank`` given) each rank appends to ``metrics.rank{r}.jsonl`` and writes
    ``checkpoints/step-N/rank{r}.pt``; once every rank has written (a barrier), rank 0 commits
    the checkpoint by updating ``latest``, so a checkpoint is whole on every rank or absent.
    """

    def __init__(
        self,
        run_dir: Path,
        keep_checkpoints: int,
        rank: int | None = None,
        barrier: Callable[[], object] | None = None,
        tensorboard: bool = False,
        resumed_at: int | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.keep = keep_checkpoints
        self.rank = rank
        self.barrier = barrier
        self.metrics = MetricsWriter(run_dir / metrics_file_name(rank))
        self.tensorboard = TensorBoardWriter(run_dir, rank, resumed_at) if tensorboard else None

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
        """Append one metric record (and hand it to TensorBoard when that is on)."""
        self.metrics.log(step, epoch, name, value, block=block, split=split)
        if self.tensorboard is not None:
            self.tensorboard.log(step, name, value, block, split)

    def save_checkpoint(self, step: int, state: dict[str, Any]) -> None:
        """Save the state atomically and make it the latest checkpoint."""
        if self.rank is None:
            save_checkpoint(self.run_dir, step, state, keep=self.keep)
            return
        save_checkpoint(
            self.run_dir, step, state, file_name=state_file_name(self.rank), commit=False
        )
        if self.barrier is not None:
            self.barrier()  # every rank's file is on disk before the commit
        if self.rank == 0:
            commit_checkpoint(self.run_dir, step, keep=self.keep)
        if self.barrier is not None:
            self.barrier()  # no rank runs ahead (and prunes) before the commit

    def close(self) -> None:
        """Close the metrics file (and the TensorBoard writer)."""
        self.metrics.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
