"""The trained weights of a run's latest checkpoint, from a one-process or a staged run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from beyond_backprop.errors import CheckpointError
from beyond_backprop.tracking.checkpoint import (
    STATE_FILE,
    checkpoint_dir,
    latest_checkpoint_step,
    load_latest_checkpoint,
)
from beyond_backprop.tracking.run_dir import META_FILE, state_file_name


def load_run_weights(
    run_dir: str | os.PathLike[str],
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """``(step, model_state, locals_state)`` of the run's latest checkpoint.

    A one-process run has one ``state.pt``. A staged run has one ``rank{r}.pt`` per stage, each
    holding the whole stack of which only the stage's own blocks were trained; the stages
    (``meta.json``) say which rank's file each block and its local module come from.

    Raises:
        CheckpointError: no checkpoint, or a staged run without its stages or a rank's file.
    """
    path = Path(run_dir)
    step = latest_checkpoint_step(path)
    if step is None:
        raise CheckpointError(f"{path} has no checkpoint (checkpoints/latest)")
    if (checkpoint_dir(path, step) / STATE_FILE).is_file():
        loaded = load_latest_checkpoint(path)
        assert loaded is not None  # the pointer was read just above
        return step, loaded[1]["model"], loaded[1]["locals"]
    try:
        stages = json.loads((path / META_FILE).read_text())["stages"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{path}: checkpoint step-{step} has no {STATE_FILE} and {META_FILE} names no "
            f"stages to assemble the per-rank files from ({exc})"
        ) from exc
    model: dict[str, Any] = {}
    locals_: dict[str, Any] = {}
    for rank, (start, stop) in enumerate(stages):
        loaded = load_latest_checkpoint(path, file_name=state_file_name(rank))
        assert loaded is not None
        state = loaded[1]
        for k in range(start, stop):
            model.update(_with_prefix(state["model"], f"blocks.{k}."))
            locals_.update(_with_prefix(state["locals"], f"{k}."))
    return step, model, locals_


def _with_prefix(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {key: value for key, value in state.items() if key.startswith(prefix)}
