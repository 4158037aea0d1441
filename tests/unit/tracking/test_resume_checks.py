"""Resuming checks the checkpoint against the run's config before loading it, says what
differs, refuses damaged states in one line, and does nothing for a complete run; a full disk
during a run leaves the last good checkpoint to resume from. Throughput counts the samples
trained, and a lone last example joins the batch before it."""

from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from beyond_backprop.config.fingerprint import config_sha256
from beyond_backprop.errors import CheckpointError, CheckpointWriteError
from beyond_backprop.run import resume_run, start_run
from beyond_backprop.tracking import checkpoint
from beyond_backprop.tracking.checkpoint import (
    latest_checkpoint_step,
    load_latest_checkpoint,
    save_checkpoint,
)
from beyond_backprop.tracking.metrics import read_metrics
from tests.helpers import tiny_config


def test_checkpoint_holds_format_config_and_its_hash(tmp_path: Path) -> None:
    result = start_run(tiny_config(tmp_path), stop_after=3)
    loaded = load_latest_checkpoint(result.run_dir)
    assert loaded is not None
    state = loaded[1]
    assert state["format"] == 2 and len(state["config_sha256"]) == 64
    assert state["config"] == (result.run_dir / "config.yaml").read_text()


def test_edited_config_is_refused_naming_the_changed_keys(tmp_path: Path) -> None:
    stopped = start_run(tiny_config(tmp_path), stop_after=3)
    config_file = stopped.run_dir / "config.yaml"
    data = yaml.safe_load(config_file.read_text())
    data["model"]["hidden"] = [16, 32]
    data["optim"]["lr"] = 0.2
    config_file.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(CheckpointError) as info:
        resume_run(stopped.run_dir)
    message = str(info.value)
    assert "was written with another config" in message and "\n" not in message
    assert "model.hidden: [16, 16] -> [16, 32]" in message and "optim.lr: 0.1 -> 0.2" in message


def test_checkpoint_of_another_run_is_refused(tmp_path: Path) -> None:
    ours = start_run(tiny_config(tmp_path), stop_after=3)
    other = start_run(tiny_config(tmp_path, model={"arch": "mlp", "hidden": [8]}), stop_after=3)
    shutil.rmtree(ours.run_dir / "checkpoints")
    shutil.copytree(other.run_dir / "checkpoints", ours.run_dir / "checkpoints")
    with pytest.raises(CheckpointError, match=r"model.hidden: \[8\] -> \[16, 16\]"):
        resume_run(ours.run_dir)


def test_config_stored_without_a_field_added_since_still_resumes(tmp_path: Path) -> None:
    stopped = start_run(tiny_config(tmp_path, train={"epochs": 2}), stop_after=3)
    loaded = load_latest_checkpoint(stopped.run_dir)
    assert loaded is not None
    state = loaded[1]
    old = yaml.safe_load(state["config"])
    del old["deterministic"], old["optim"]["gamma"]  # as written before these fields existed
    state["config"] = yaml.safe_dump(old, sort_keys=False)
    state["config_sha256"] = config_sha256(state["config"])
    save_checkpoint(stopped.run_dir, loaded[0], state)
    assert resume_run(stopped.run_dir).summary["completed"]


def test_checkpoint_missing_an_entry_is_one_line(tmp_path: Path) -> None:
    stopped = start_run(tiny_config(tmp_path), stop_after=3)
    loaded = load_latest_checkpoint(stopped.run_dir)
    assert loaded is not None
    del loaded[1]["rng"]
    save_checkpoint(stopped.run_dir, loaded[0], loaded[1])
    with pytest.raises(CheckpointError, match=r"lacks the entry 'rng'"):
        resume_run(stopped.run_dir)


def test_resuming_a_complete_run_adds_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    done = start_run(tiny_config(tmp_path))
    records = read_metrics(done.run_dir / "metrics.jsonl")
    with caplog.at_level(logging.WARNING):
        again = resume_run(done.run_dir)
    assert "the run is already complete" in caplog.text
    assert read_metrics(done.run_dir / "metrics.jsonl") == records
    assert again.summary["accuracy"] == done.summary["accuracy"]


def test_full_disk_mid_run_keeps_the_last_checkpoint_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saves: list[Path] = []
    real = checkpoint.atomic_torch_save

    def fill_up(path: Path, obj: Any) -> Path:
        saves.append(path)
        if len(saves) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, obj)

    monkeypatch.setattr(checkpoint, "atomic_torch_save", fill_up)
    config = tiny_config(tmp_path, train={"epochs": 2, "checkpoint_every": 3})
    with pytest.raises(CheckpointWriteError, match=r"No space left on device.*MiB free"):
        start_run(config)
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    assert latest_checkpoint_step(run_dir) == 3
    monkeypatch.setattr(checkpoint, "atomic_torch_save", real)
    assert resume_run(run_dir).summary["completed"]


def test_throughput_counts_the_samples_trained(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, data={"train_limit": 10, "batch_size": 128})
    summary = start_run(config).summary
    assert summary["steps"] == 2 and summary["samples"] == 20  # 2 epochs of 10, not 2 x 128
    assert summary["samples_per_second"] == pytest.approx(20 / summary["train_seconds"])


def test_lone_last_example_joins_the_previous_batch(tmp_path: Path) -> None:
    config = tiny_config(
        tmp_path,
        data={"train_limit": 7 * 32 + 1},
        model={"arch": "mlp", "hidden": [16], "batch_norm": True},
        train={"epochs": 1},
    )
    summary = start_run(config).summary
    assert summary["completed"] and summary["steps"] == 7 and summary["samples"] == 225
