"""Run directory naming, collision suffixes, and open_run_dir's checks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from beyond_backprop.errors import CheckpointError, ConfigError
from beyond_backprop.tracking.run_dir import CONFIG_FILE, create_run_dir, open_run_dir

NOW = datetime(2024, 3, 9, 7, 5, 1)


def test_name_layout(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path / "runs", "mnist-mlp", "dgl", 17, now=NOW)
    assert run == tmp_path / "runs" / "mnist-mlp" / "20240309-070501_dgl_s17"
    assert run.is_dir()
    assert list(run.iterdir()) == []


def test_collision_suffixes(tmp_path: Path) -> None:
    names = [create_run_dir(tmp_path, "x", "bp", 0, now=NOW).name for _ in range(3)]
    assert names == ["20240309-070501_bp_s0", "20240309-070501_bp_s0-2", "20240309-070501_bp_s0-3"]
    other_seed = create_run_dir(tmp_path, "x", "bp", 1, now=NOW)
    assert other_seed.name == "20240309-070501_bp_s1"


def test_default_time_is_now(tmp_path: Path) -> None:
    before = datetime.now().replace(microsecond=0)
    run = create_run_dir(tmp_path, "x", "fa", 3)
    stamp = datetime.strptime(run.name.split("_")[0], "%Y%m%d-%H%M%S")
    assert before <= stamp <= datetime.now()


@pytest.mark.parametrize(
    ("name", "rule"), [("../up", "dgl"), ("", "dgl"), ("x", "a/b"), ("..", "d")]
)
def test_rejects_unsafe_components(tmp_path: Path, name: str, rule: str) -> None:
    with pytest.raises(ConfigError):
        create_run_dir(tmp_path / "runs", name, rule, 0, now=NOW)
    assert list(tmp_path.rglob("*")) == []  # checked before anything is created


def test_open_run_dir(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, "x", "dgl", 0, now=NOW)
    with pytest.raises(CheckpointError, match=f"{run}.*no {CONFIG_FILE}"):
        open_run_dir(run)
    (run / CONFIG_FILE).write_text("seed: 0\n")
    assert open_run_dir(str(run)) == run


def test_open_run_dir_missing_or_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(CheckpointError, match=f"{missing} does not exist"):
        open_run_dir(missing)
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(CheckpointError, match="not a directory"):
        open_run_dir(a_file)
