"""A run started with ``--plugin`` remembers its plugin modules in the run directory, so that
``bbp train --resume`` (in a fresh process, without ``--plugin``) can read its config again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from beyond_backprop.run.plugins import ENV_VAR
from beyond_backprop.tracking.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "own_rule.py"  # registers the rule local_linear


def bbp(*args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != ENV_VAR}
    return subprocess.run(
        [sys.executable, "-m", "beyond_backprop", *args],
        env={**env, "CI": "1"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_resume_loads_the_plugins_the_run_was_started_with(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    started = bbp(
        "train", "--plugin", str(PLUGIN), "--config", str(ROOT / "configs/smoke/backprop.yaml"),
        "--set", "rule.name=local_linear", "--set", f"log.root={runs}",
        "--set", "train.max_steps=4", "--stop-after", "2",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    (path,) = runs.glob("*/*")
    run_dir = RunDir(path)
    assert json.loads(run_dir.plugins.read_text()) == {"plugins": [str(PLUGIN.resolve())]}
    resumed = bbp("train", "--resume", str(path))
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(run_dir.summary.read_text())["steps"] == 4
