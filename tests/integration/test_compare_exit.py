"""``bbp compare`` exits 4 when every run of its suite failed (``docs/runs.md``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli

SUITE = """
name: broken
base:
  data: {name: synthetic, batch_size: 32}
  model: {arch: mlp, hidden: [16, 16]}
  train: {epochs: 1}
  engine: {threads: 1}
entries:
  - {name: broken, rule: {name: backprop}, set: [data.name=cifar10]}
"""


def test_compare_exits_4_when_every_run_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "broken.yaml"
    suite.write_text(SUITE)
    args = ["compare", "--suite", str(suite), "--out", str(tmp_path / "out")]
    code, out, _ = run_cli(args, monkeypatch, capsys)
    assert code == 4
    assert "broken: failed: exit 2: error: CIFAR-10" in out
