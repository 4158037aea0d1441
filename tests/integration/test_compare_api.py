"""A custom stack trained with ``beyond_backprop.train`` is resumed, probed and compared from
the CLI; a plugin's rule is used by ``bbp train --plugin`` and ``bbp compare --plugin``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from examples import own_stack

import beyond_backprop as bbp
from beyond_backprop.config import load_config
from beyond_backprop.run import plugins
from tests.helpers import run_cli
from tests.unit.api.registries import isolated_registries

TINY = {
    "data": {"name": "synthetic", "batch_size": 32},
    "rule": {"name": "dgl", "head": {"kind": "mlp", "depth": 1, "width": 8}},
    "optim": {"name": "sgd", "lr": 0.05},
    "train": {"epochs": 2, "log_every": 2},
    "engine": {"threads": 1},
}
SUITE = """
name: api
base:
  data: {name: synthetic, batch_size: 32}
  model: {arch: "python:examples.own_stack:make_stack", width: 8}
  train: {epochs: 1, log_every: 2}
  engine: {threads: 1}
entries:
  - {name: dgl, rule: {name: dgl, head: {kind: mlp, depth: 1, width: 8}}}
  - {name: local_linear, rule: {name: local_linear}}
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What --plugin sets and registers is undone after each test."""
    monkeypatch.setenv(plugins.ENV_VAR, "")
    yield from isolated_registries()


def test_a_custom_stack_is_resumed_probed_and_compared_from_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {**TINY, "name": "custom", "log": {"root": str(tmp_path), "progress": False}}
    stopped = bbp.train(config, stack=own_stack.make_stack, stop_after=4)
    assert not stopped.summary["completed"]
    run_dir = stopped.run_dir
    code, out, err = run_cli(["train", "--resume", str(run_dir)], monkeypatch, capsys)
    assert code == 0, err
    assert "test accuracy" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["completed"] and summary["steps"] == summary["total_steps"] > 4
    code, out, err = run_cli(
        ["eval", "--probe", str(run_dir), "--epochs", "1"], monkeypatch, capsys
    )
    assert code == 0, err
    assert set(json.loads((run_dir / "probe.json").read_text())["accuracy"]) == {"0", "1"}

    suite = tmp_path / "api.yaml"
    suite.write_text(SUITE)
    out_dir = tmp_path / "compare"
    args = [
        "compare",
        "--suite",
        str(suite),
        "--out",
        str(out_dir),
        "--plugin",
        "examples.own_rule",
    ]
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, out + err
    table = json.loads((out_dir / "compare.json").read_text())
    assert [(r["label"], r["error"]) for r in table] == [("dgl", None), ("local_linear", None)]
    for row in table:
        saved = load_config(Path(row["run_dir"]) / "config.yaml")
        assert saved.model.arch == "python:examples.own_stack:make_stack"


def test_bbp_train_uses_a_plugins_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--plugin", "examples.own_rule", "--config", "configs/smoke/backprop.yaml",
            "--set", "rule.name=local_linear", "--set", f"log.root={tmp_path}",
            "--set", "train.epochs=1"]  # fmt: skip
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    assert "training local_linear on synthetic" in out
    (run_dir,) = (tmp_path / "smoke-backprop").iterdir()
    assert load_config(run_dir / "config.yaml").rule.name == "local_linear"


def test_without_the_plugin_the_rule_is_unknown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        ["train", "--plugin", "no_such_plugin_xyz", "--config", "configs/smoke/backprop.yaml"],
        monkeypatch, capsys,
    )  # fmt: skip
    assert code == 2
    assert "error: --plugin no_such_plugin_xyz: cannot import it" in err
