"""SIGTERM stops ``bbp train`` at a step boundary with a checkpoint; ``--resume`` finishes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sigterm_checkpoints_and_resume_finishes(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    env = {**os.environ, "CI": "1"}
    command = [sys.executable, "-m", "beyond_backprop", "train", "--config",
               str(ROOT / "configs" / "smoke" / "backprop.yaml"),
               "--set", f"log.root={runs}", "--set", "train.epochs=400"]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not list(runs.glob("*/*/metrics.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "resume with: bbp train --resume" in out
    (run_dir,) = runs.glob("*/*")
    pointer = (run_dir / "checkpoints" / "latest").read_text()
    stopped_at = int(pointer.removeprefix("step-"))
    assert 0 < stopped_at < 400 * 8
    resumed = subprocess.run(
        [sys.executable, "-m", "beyond_backprop", "train", "--resume", str(run_dir)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "test accuracy" in resumed.stdout
