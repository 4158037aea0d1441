"""``bbp launch`` ends as a one-process run does: a rank's error is the run's exit code and
``error:`` line, a signal anywhere stops every rank with a checkpoint and exit 128+N, a hung
rank ends the run within ``engine.timeout_s`` + 10 s. Real torchrun, 2 ranks, a smoke config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke" / "dgl.yaml")


def launch(tmp_path: Path, *overrides: str) -> subprocess.Popen[str]:
    """``bbp launch --nproc 2`` on the smoke config; its rank status files go under tmp_path."""
    sets = [f"log.root={tmp_path / 'runs'}", "engine.stop_check_every=2", *overrides]
    command = [sys.executable, "-m", "beyond_backprop", "launch", "--nproc", "2", "--config",
               SMOKE, *(a for s in sets for a in ("--set", s))]  # fmt: skip
    env = {**os.environ, "CI": "1", "TMPDIR": str(tmp_path)}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_training(tmp_path: Path) -> dict[int, int]:
    """Once both ranks train: their pids."""
    deadline = time.monotonic() + 120
    while not list((tmp_path / "runs").glob("*/*/metrics.rank*.jsonl")):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.1)
    time.sleep(0.5)
    (folder,) = tmp_path.glob("bbp-launch-*")
    return {r: json.loads((folder / f"rank{r}.pid.json").read_text())["pid"] for r in (0, 1)}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("target", ["launcher", "rank 1"])
def test_sigterm_stops_every_rank_with_a_checkpoint(target: str, tmp_path: Path) -> None:
    process = launch(tmp_path, "train.epochs=400")
    pids = wait_for_training(tmp_path)
    os.kill(process.pid if target == "launcher" else pids[1], signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "resume with: bbp launch --nproc 2 --resume" in out
    assert not any(alive(pid) for pid in pids.values()), "a rank trains on as an orphan"
    (run_dir,) = (tmp_path / "runs").glob("*/*")
    step = int((run_dir / "checkpoints" / "latest").read_text().removeprefix("step-"))
    for rank in (0, 1):  # every rank's part of the same step
        assert (run_dir / "checkpoints" / f"step-{step}" / f"rank{rank}.pt").is_file()


def test_a_rank_error_is_the_runs_exit_code_and_line(tmp_path: Path) -> None:
    process = launch(tmp_path, "optim.lr=1000000000000.0")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 3, err
    assert err.strip().splitlines()[-1].startswith("error: rank 1: non-finite loss at step")


def test_a_hung_rank_ends_the_run_within_the_timeout(tmp_path: Path) -> None:
    timeout_s = 3
    process = launch(tmp_path, "train.epochs=400", f"engine.timeout_s={timeout_s}",
                     "engine.schedule=pipelined")  # fmt: skip
    pids = wait_for_training(tmp_path)
    os.kill(pids[1], signal.SIGSTOP)
    try:
        # torchrun alone would wait 30 s for the stopped rank to answer its SIGTERM
        _, err = process.communicate(timeout=timeout_s + 10)
    finally:
        if alive(pids[1]):
            os.kill(pids[1], signal.SIGKILL)
    assert process.returncode == 4, err
    assert "error: rank 0: stage 0 (rank 0) could not" in err
    assert "error: rank 1 (stage 1) ended without a report" in err
    assert not any(alive(pid) for pid in pids.values())
