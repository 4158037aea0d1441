"""``bbp compare`` trains one-process runs inside its own process: a failing run is its row's
failure and the next run goes on, the process is put back after each run, Ctrl-C stops the
run with a checkpoint and then the suite; the tiny suite's every rule trains this way."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from beyond_backprop.compare import inprocess
from beyond_backprop.compare.execute import run_suite
from beyond_backprop.compare.inprocess import SuiteStopped
from beyond_backprop.compare.suite import load_suite
from beyond_backprop.tracking.checkpoint import latest_checkpoint_step

SUITE = """
name: three
base:
  data: {name: synthetic, batch_size: 32}
  model: {arch: mlp, hidden: [16, 16]}
  train: {epochs: 1}
  engine: {threads: 1}
entries:
  - {name: first, rule: {name: backprop}}
  - {name: broken, rule: {name: dgl}}
  - {name: next, rule: {name: fa}}
  - {name: broken-last, rule: {name: dgl}}
"""
TINY = Path(__file__).parents[2] / "configs" / "suites" / "tiny.yaml"


def test_a_failing_run_is_its_rows_failure_and_the_next_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "three.yaml").write_text(SUITE)
    suite = load_suite(tmp_path / "three.yaml", tmp_path / "runs")
    real = inprocess.start_run

    def start_run(config: Any, **kwargs: Any) -> Any:
        if config.name.startswith("broken"):
            torch.set_num_threads(2)  # what a failing run leaves behind is put back
            logging.getLogger().handlers.append(logging.NullHandler())
            raise RuntimeError("a bug in one rule")
        return real(config, **kwargs)

    monkeypatch.setattr(inprocess, "start_run", start_run)
    torch.set_num_threads(1)
    handlers = logging.getLogger().handlers[:]
    outcomes = run_suite(suite.variants, tmp_path, force=False)
    failed = "exit 1: RuntimeError: a bug in one rule"
    assert [o.error for o in outcomes] == [None, failed, None, failed]
    assert outcomes[0].summary["completed"] and outcomes[2].summary["completed"]
    assert torch.get_num_threads() == 1 and logging.getLogger().handlers == handlers
    log = (tmp_path / "logs" / "broken.log").read_text()
    assert "Traceback" in log and "a bug in one rule" in log


def test_ctrl_c_stops_the_run_with_a_checkpoint_then_the_suite(tmp_path: Path) -> None:
    (tmp_path / "three.yaml").write_text(SUITE)
    suite = load_suite(tmp_path / "three.yaml", tmp_path / "runs")
    started: list[str] = []

    def on_start(i: int, variant: Any) -> Any:
        started.append(variant.label)
        return lambda progress: signal.raise_signal(signal.SIGINT)  # Ctrl-C at its first step

    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(SuiteStopped) as info:
        run_suite(suite.variants, tmp_path, force=False, on_start=on_start)
    assert info.value.signum == signal.SIGINT and started == ["first"]
    assert signal.getsignal(signal.SIGINT) == handler
    (run_dir,) = (tmp_path / "runs" / "first").iterdir()
    step = latest_checkpoint_step(run_dir)
    assert step is not None and 0 < step < 8  # stopped at a step boundary, resumable


def test_every_one_process_run_of_the_tiny_suite_trains_in_process(tmp_path: Path) -> None:
    variants = [v for v in load_suite(TINY, tmp_path / "runs").variants if v.stages == 1]
    outcomes = run_suite(variants, tmp_path, force=False)
    assert [(o.variant.label, o.error) for o in outcomes if o.error] == []
    for outcome in outcomes:
        assert outcome.summary["completed"], outcome.variant.label
        assert outcome.summary["steady_samples_per_second"] > 0, outcome.variant.label
