"""Run directories, metrics, checkpoints, RNG state and run metadata, all written atomically."""

from __future__ import annotations

from beyond_backprop.tracking.atomic import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    is_temp,
)
from beyond_backprop.tracking.checkpoint import (
    check_weights_only_safe,
    checkpoint_dir,
    commit_checkpoint,
    latest_checkpoint_step,
    load_latest_checkpoint,
    save_checkpoint,
)
from beyond_backprop.tracking.meta import collect_meta, git_state, package_version
from beyond_backprop.tracking.metrics import (
    MetricsWriter,
    read_metrics,
    truncate_after,
)
from beyond_backprop.tracking.rng import (
    capture_numpy_generator,
    capture_rng_state,
    restore_numpy_generator,
    restore_rng_state,
)
from beyond_backprop.tracking.run_dir import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    LATEST_POINTER,
    META_FILE,
    METRICS_FILE,
    STATE_FILE,
    SUMMARY_FILE,
    RunDir,
    create_run_dir,
    metrics_file_name,
    open_run_dir,
    state_file_name,
)

__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "LATEST_POINTER",
    "META_FILE",
    "METRICS_FILE",
    "STATE_FILE",
    "SUMMARY_FILE",
    "MetricsWriter",
    "RunDir",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "capture_numpy_generator",
    "capture_rng_state",
    "check_weights_only_safe",
    "checkpoint_dir",
    "collect_meta",
    "commit_checkpoint",
    "create_run_dir",
    "git_state",
    "is_temp",
    "latest_checkpoint_step",
    "load_latest_checkpoint",
    "metrics_file_name",
    "open_run_dir",
    "package_version",
    "read_metrics",
    "restore_numpy_generator",
    "restore_rng_state",
    "save_checkpoint",
    "state_file_name",
    "truncate_after",
]
