"""``bbp launch`` checks what it can before torchrun starts: one ``error:`` line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from beyond_backprop.config import dump_config, load_config
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
DGL = str(ROOT / "configs" / "smoke" / "dgl.yaml")  # 3 blocks
BACKPROP = str(ROOT / "configs" / "smoke" / "backprop.yaml")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nproc", "2", "--config", BACKPROP, "--set", "engine.schedule=pipelined"],
         "error: engine.schedule: 'pipelined' serves wirings with backward 'none', but rule "
         "'backprop'"),
        (["--nproc", "4", "--config", DGL], "error: engine.stages: 4 stages for 3 blocks"),
        (["--nproc", "2", "--config", DGL, "--set", "engine.boundaries=[5]"],
         "error: engine.boundaries: [5] is invalid"),
        (["--nproc", "2", "--config", DGL, "--set", "engine.timeout_s=.nan"],
         "error: engine.timeout_s: nan is invalid"),
        (["--nproc", "2", "--config", DGL, "--stop-after", "-1"],
         "error: --stop-after -1 is invalid: must be a step >= 1"),
    ],
    ids=["schedule", "stages-over-blocks", "boundaries", "timeout-nan", "stop-after"],
)  # fmt: skip
def test_launch_refuses_before_torchrun(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = tmp_path / "runs"
    code, out, err = run_cli(["launch", *args, "--set", f"log.root={runs}"], monkeypatch, capsys)
    assert code == 2, err
    assert err.strip().splitlines() == [err.strip()] and err.startswith(message), err
    assert "launching" not in out and not runs.exists()


def test_resume_with_another_nproc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(dump_config(load_config(DGL, ["engine.stages=2"])))
    args = ["launch", "--nproc", "3", "--resume", str(run_dir)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2
    assert err.strip() == (
        f"error: --resume {run_dir}: the run has 2 stages but --nproc 3 x --nnodes 1 starts 3 "
        "processes: resume with --nproc 2"
    )


def test_train_stop_after_must_be_a_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--config", DGL, "--set", f"log.root={tmp_path}", "--stop-after", "-1"]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and err.strip() == "error: --stop-after -1 is invalid: must be a step >= 1"
