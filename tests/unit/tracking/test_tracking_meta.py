"""Run metadata: expected keys, JSON-serialisable, extra wins, git state."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from beyond_backprop.tracking.meta import collect_meta, git_state


def test_collect_meta_keys_and_extra() -> None:
    meta = collect_meta({"backend": "gloo", "world_size": 2, "device": "override"})
    for key in ("version", "git_sha", "git_dirty", "python_version", "platform", "hostname"):
        assert key in meta
    assert meta["torch_version"] == torch.__version__
    assert meta["num_threads"] == torch.get_num_threads()
    assert meta["command"] == sys.argv
    assert meta["backend"] == "gloo" and meta["world_size"] == 2
    assert meta["device"] == "override"  # extra wins
    assert meta["start_time"].endswith("+00:00")
    json.dumps(meta)


def test_git_state_outside_a_repo(tmp_path: Path) -> None:
    assert git_state(tmp_path) == {"git_sha": None, "git_dirty": None}


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_state_in_a_repo(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    (tmp_path / "f.txt").write_text("a")
    git("add", "f.txt")
    git("commit", "-q", "-m", "init")
    state = git_state(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", state["git_sha"])
    assert state["git_dirty"] is False
    (tmp_path / "untracked.txt").write_text("x")
    assert git_state(tmp_path)["git_dirty"] is False
    (tmp_path / "f.txt").write_text("b")
    assert git_state(tmp_path) == {"git_sha": state["git_sha"], "git_dirty": True}
