"""TensorBoard as a second writer of the run's metric records (``log.tensorboard: true``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beyond_backprop.tracking.run_dir import TENSORBOARD_DIR


def tensorboard_available() -> bool:
    """Whether the optional ``tensorboard`` package (extra ``tb``) is installed."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def scalar_tag(name: str, block: int | None, split: str | None) -> str:
    """``split/name`` for the network's figures, ``split/block{k}/name`` for a block's."""
    where = "" if block is None else f"block{block}/"
    return f"{split or 'train'}/{where}{name}"


class TensorBoardWriter:
    """Scalars under ``<run_dir>/tensorboard`` (``tensorboard/rank{r}`` in a staged run): the
    same records as ``metrics.jsonl`` (the config check ``log.tensorboard`` makes sure the
    package is there), one tag per (split, block, name), x-axis the step."""

    def __init__(self, run_dir: Path, rank: int | None = None, resumed_at: int | None = None
                 ) -> None:  # fmt: skip
        """``resumed_at``: the step a resumed run restarts from; TensorBoard drops the events
        logged at or after it (the resumed run logs them again)."""
        from torch.utils.tensorboard import SummaryWriter

        log_dir = run_dir / TENSORBOARD_DIR
        if rank is not None:
            log_dir = log_dir / f"rank{rank}"
        self._writer: Any = SummaryWriter(log_dir=str(log_dir), purge_step=resumed_at)

    def log(self, step: int, name: str, value: float, block: int | None, split: str | None
            ) -> None:  # fmt: skip
        self._writer.add_scalar(scalar_tag(name, block, split), value, global_step=step)

    def close(self) -> None:
        self._writer.close()
