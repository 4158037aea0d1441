"""Resume is bitwise exact: N steps straight equals K steps, stop, resume to N."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from beyond_backprop.run import resume_run, start_run
from beyond_backprop.tracking.checkpoint import load_latest_checkpoint
from beyond_backprop.tracking.metrics import read_metrics
from tests.helpers import tiny_config


def _records(run_dir: Path) -> list[tuple[object, ...]]:
    return [
        (r["step"], r["epoch"], r["block"], r["split"], r["name"], r["value"])
        for r in read_metrics(run_dir / "metrics.jsonl")
    ]


@pytest.mark.parametrize("stop_at", [5, 8])  # mid-epoch (and mid log window), and an epoch end
def test_resume_is_bitwise_exact(tmp_path: Path, stop_at: int) -> None:
    config = tiny_config(
        tmp_path,
        model={"arch": "mlp", "hidden": [16, 16], "dropout": 0.2},  # dropout draws from the RNG
        optim={"name": "adam", "lr": 0.01},
        train={"epochs": 3, "log_every": 3},
    )
    straight = start_run(config)
    stopped = start_run(config, stop_after=stop_at)
    assert not stopped.summary["completed"] and stopped.summary["steps"] == stop_at
    resumed = resume_run(stopped.run_dir)
    assert resumed.summary["completed"]
    a = load_latest_checkpoint(straight.run_dir)
    b = load_latest_checkpoint(resumed.run_dir)
    assert a is not None and b is not None and a[0] == b[0] == 24
    for key, value in a[1]["model"].items():
        assert torch.equal(value, b[1]["model"][key]), key
    assert _records(straight.run_dir) == _records(resumed.run_dir)
    summary = json.loads((resumed.run_dir / "summary.json").read_text())
    assert summary["accuracy"] == straight.summary["accuracy"]


def test_leftover_temp_file_is_never_taken_as_a_checkpoint(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, train={"epochs": 3})
    stopped = start_run(config, stop_after=8)
    step_dir = stopped.run_dir / "checkpoints" / "step-8"
    (step_dir / ".tmp-state.pt").write_bytes(b"half a checkpoint")
    (stopped.run_dir / "checkpoints" / ".tmp-latest").write_text("step-99")
    loaded = load_latest_checkpoint(stopped.run_dir)
    assert loaded is not None and loaded[0] == 8
    assert resume_run(stopped.run_dir).summary["steps"] == 24
