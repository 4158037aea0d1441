"""Resuming a run: load its latest checkpoint, check that it belongs to this config, restore it.

A checkpoint stores the config it was written with (its YAML text and sha256, format 2): a
checkpoint of another config, or a run whose ``config.yaml`` was edited since, is refused
naming the keys that differ, before any tensor is copied. The file's checksum is checked when
it is read (``tracking.checkpoint``); a state that still does not fit (a missing key, a tensor
of another shape, from a checkpoint of an older format) is reported in one line.
"""

from __future__ import annotations

from typing import Any

from beyond_backprop.config import ExperimentConfig
from beyond_backprop.config.fingerprint import config_changes, config_fingerprint
from beyond_backprop.engines.trainer import CHECKPOINT_FORMAT, Trainer
from beyond_backprop.errors import CheckpointError
from beyond_backprop.tracking.checkpoint import checkpoint_dir, load_latest_checkpoint
from beyond_backprop.tracking.metrics import truncate_after
from beyond_backprop.tracking.run_dir import RunDir, state_file_name


def restore(engine: Trainer, run_dir: RunDir, rank: int | None) -> int:
    """Restore ``engine`` from the run's latest checkpoint; returns its step.

    Records logged after the checkpoint are dropped: the resumed run logs them again.

    Raises:
        CheckpointError: no checkpoint, a corrupted one, one of another config or format, or a
            state that does not fit the engine; one line each.
    """
    file_name = state_file_name(rank)
    loaded = load_latest_checkpoint(run_dir.path, file_name=file_name)
    if loaded is None:
        raise CheckpointError(f"{run_dir.path} has no checkpoint to resume from")
    step, state = loaded
    where = checkpoint_dir(run_dir.path, step) / file_name
    check_compatible(state, engine.exp.config, str(where))
    try:
        engine.load_state_dict(state)
    except KeyError as error:
        raise CheckpointError(
            f"checkpoint {where} lacks the entry {error}: it was written by another version "
            "of the library or is damaged"
        ) from error
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        raise CheckpointError(f"checkpoint {where} does not fit this run: {reason}") from error
    truncate_after(run_dir.metrics(rank), step)
    return step


def check_compatible(state: dict[str, Any], config: ExperimentConfig, where: str) -> None:
    """Refuse a checkpoint of an unknown format or of another config, saying what differs.

    Checkpoints of formats before 2 hold no config; they are loaded as they are.
    """
    found = int(state.get("format", 0))
    if found > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {where} has format {found}; this version reads formats up to "
            f"{CHECKPOINT_FORMAT}: resume it with the version that wrote it"
        )
    stored = state.get("config_sha256")
    if stored is None:
        return
    if stored == config_fingerprint(config)["config_sha256"]:
        return
    changes = config_changes(str(state.get("config", "")), config)
    if changes:  # none: only fields added since, at their defaults
        raise CheckpointError(
            f"checkpoint {where} was written with another config ({'; '.join(changes)}); "
            "resume with the config the run was started with (was its config.yaml edited?)"
        )
