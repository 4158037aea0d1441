"""``log.tensorboard``: every metric record also becomes a TensorBoard scalar."""

from __future__ import annotations

from pathlib import Path

import pytest

from beyond_backprop.errors import ConfigError
from beyond_backprop.run import resume_run, start_run
from beyond_backprop.tracking import tensorboard
from beyond_backprop.tracking.metrics import read_metrics
from beyond_backprop.tracking.tensorboard import scalar_tag
from tests.helpers import tiny_config

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = event_accumulator.EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_tensorboard_holds_the_same_records_as_metrics_jsonl(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, log={"root": str(tmp_path / "runs"), "progress": False,
                                        "tensorboard": True})  # fmt: skip
    run_dir = start_run(config).run_dir
    expected: dict[str, list[tuple[int, float]]] = {}
    for record in read_metrics(run_dir / "metrics.jsonl"):
        tag = scalar_tag(record["name"], record["block"], record["split"])
        expected.setdefault(tag, []).append((record["step"], record["value"]))
    got = scalars(run_dir / "tensorboard")
    assert got.keys() == expected.keys() and "test/accuracy" in got
    for tag, points in expected.items():
        assert [s for s, _ in got[tag]] == [s for s, _ in points], tag
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag


def test_a_resumed_run_replaces_the_events_after_its_checkpoint(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, log={"root": str(tmp_path / "runs"), "progress": False,
                                        "tensorboard": True},
                         train={"epochs": 2, "log_every": 1, "checkpoint_every": 2})  # fmt: skip
    stopped = start_run(config, stop_after=3)
    resume_run(stopped.run_dir)
    steps = [s for s, _ in scalars(stopped.run_dir / "tensorboard")["train/block2/loss"]]
    assert steps == sorted(set(steps)) and steps[0] == 1  # no step twice, none lost


def test_tensorboard_without_the_package_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tensorboard, "tensorboard_available", lambda: False)
    with pytest.raises(ConfigError) as info:
        tiny_config(tmp_path, log={"tensorboard": True})
    assert "log.tensorboard: true needs the tensorboard package" in str(info.value)
