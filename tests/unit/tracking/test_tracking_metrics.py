"""Metrics JSONL: record layout, truncation on resume, torn last lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from beyond_backprop.errors import CheckpointError
from beyond_backprop.tracking.metrics import MetricsWriter, read_metrics, truncate_after
from beyond_backprop.tracking.run_dir import metrics_file_name


def fake_clock(times: list[float]) -> Iterator[float]:
    yield from times


def _write_steps(path: Path, steps: range) -> None:
    with MetricsWriter(path) as writer:
        for step in steps:
            writer.log(step, step // 3, "loss", 1.0 / (step + 1), block=step % 2, split="train")


def test_record_layout_and_wall(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    clock = fake_clock([100.0, 100.5, 102.25])
    with MetricsWriter(path, clock=lambda: next(clock)) as writer:
        first = writer.log(1, 0, "loss", 0.25, block=2, split="train")
        # flushed per write: readable while the writer is open
        assert read_metrics(path) == [first]
        many = writer.log_many(2, 1, {"acc": 1, "ce": 0.5})
    assert first == {
        "step": 1,
        "epoch": 0,
        "block": 2,
        "split": "train",
        "name": "loss",
        "value": 0.25,
        "wall": 0.5,
    }
    assert [r["wall"] for r in many] == [2.25, 2.25]  # one clock reading per batch
    assert many[0] == {
        "step": 2,
        "epoch": 1,
        "block": None,
        "split": None,
        "name": "acc",
        "value": 1.0,
        "wall": 2.25,
    }
    assert isinstance(many[0]["value"], float)
    lines = path.read_text().splitlines()
    assert list(json.loads(lines[0])) == [
        "step",
        "epoch",
        "block",
        "split",
        "name",
        "value",
        "wall",
    ]
    assert read_metrics(path) == [first, *many]


def test_writer_appends(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    _write_steps(path, range(0, 3))
    _write_steps(path, range(3, 5))
    assert [r["step"] for r in read_metrics(path)] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("k", [-1, 0, 4, 9, 20])
def test_truncate_after_keeps_exactly_steps_up_to_k(tmp_path: Path, k: int) -> None:
    path = tmp_path / "m.jsonl"
    _write_steps(path, range(10))
    before = path.read_text().splitlines(keepends=True)
    kept = truncate_after(path, k)
    assert [r["step"] for r in read_metrics(path)] == [s for s in range(10) if s <= k]
    assert kept == len([s for s in range(10) if s <= k])
    assert path.read_text() == "".join(before[:kept])  # kept lines are byte-identical
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]


def test_truncate_missing_file(tmp_path: Path) -> None:
    assert truncate_after(tmp_path / "none.jsonl", 3) == 0
    assert not (tmp_path / "none.jsonl").exists()


@pytest.mark.parametrize("tail", ['{"step": 3, "epoch": 1, "na', '{"step": 3}', "\x00\x00\x00"])
def test_torn_last_line_is_skipped(tmp_path: Path, tail: str) -> None:
    path = tmp_path / "m.jsonl"
    _write_steps(path, range(3))
    with path.open("a") as f:
        f.write(tail)  # no newline: the crash came before it
    assert [r["step"] for r in read_metrics(path)] == [0, 1, 2]
    assert truncate_after(path, 1) == 2
    assert path.read_text().count("\n") == 2 and path.read_text().endswith("\n")


def test_writer_cuts_torn_tail_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    _write_steps(path, range(2))
    with path.open("a") as f:
        f.write('{"step": 2, "ep')
    _write_steps(path, range(2, 4))
    assert [r["step"] for r in read_metrics(path)] == [0, 1, 2, 3]


def test_corrupt_middle_line_raises(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    _write_steps(path, range(1))
    with path.open("a") as f:
        f.write('oops\n{"step": 1}\n')  # a bad line followed by good ones: not a torn write
    with pytest.raises(CheckpointError, match=f"{path}: line 2 "):
        read_metrics(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        read_metrics(tmp_path / "none.jsonl")


def test_file_names() -> None:
    assert metrics_file_name(None) == "metrics.jsonl"
    assert metrics_file_name() == "metrics.jsonl"
    assert metrics_file_name(0) == "metrics.rank0.jsonl"
    assert metrics_file_name(3) == "metrics.rank3.jsonl"
