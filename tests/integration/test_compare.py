"""``bbp compare`` on a tiny suite: rows for every run, a failure isolated, runs reused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from beyond_backprop.cli.app import main
from beyond_backprop.compare.execute import failure_reason
from beyond_backprop.compare.suite import load_suite
from beyond_backprop.errors import ConfigError

SUITE = """
name: tiny
base:
  data: {name: synthetic, batch_size: 32}
  model: {arch: mlp, hidden: [16, 16]}
  train: {epochs: 1}
  engine: {threads: 1}
entries:
  - {name: backprop, rule: {name: backprop}, staged: {stages: 2, schedule: naive}}
  - {name: broken, rule: {name: backprop}, set: [data.name=cifar10]}
"""


def run(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["bbp", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code if isinstance(info.value.code, int) else 0


def test_compare_reports_every_run_and_reuses_finished_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "tiny.yaml"
    suite.write_text(SUITE)
    out = tmp_path / "out"
    assert run(["compare", "--suite", str(suite), "--out", str(out)], monkeypatch) == 0
    shown = capsys.readouterr().out
    # the staged run between the two halves of its probe
    labels = ["backprop", "backprop-probe-1thread-before", "backprop-2stage-naive",
              "backprop-probe-1thread-after", "broken"]  # fmt: skip
    for k, label in enumerate(labels, start=1):
        assert f"run {k} of 5: {label}" in shown  # off a terminal: one line as each run starts
    table = json.loads((out / "compare.json").read_text())
    assert [r["label"] for r in table] == ["backprop", "backprop-2stage-naive", "broken"]
    one, staged, broken = table
    log = out / "logs" / "backprop-2stage-naive.log"
    assert staged["error"] is None, log.read_text()[-3000:]
    assert one["accuracy"] == staged["accuracy"]  # naive staged backprop is the same training
    assert one["gap_to_backprop"] == 0 and one["throughput_vs_backprop"] == 1
    assert one["time_speedup_vs_backprop"] == 1
    # the probe is the staged row's one-device baseline, not a row; the one-process row has
    # 1 thread, not the stages' 2: no same-cores figure
    assert staged["speedup_one_device"] > 0 and staged["speedup_same_cores"] is None
    assert len(staged["one_device_halves"]) == 2 and all(staged["one_device_halves"])
    for half in ("before", "after"):  # two runs: the second half is not the first one reused
        assert len(list((out / "runs" / f"backprop-probe-1thread-{half}").glob("*/"))) == 1
    assert "backprop on 2 stages (naive): " in shown
    # its stages were balanced by the measured cost of each of the 3 blocks: the sentence
    # says how that split caps the speed-up
    assert len(staged["block_costs_seconds"]) == 3 and "measured work splits" in shown
    meta = json.loads((Path(staged["run_dir"]) / "meta.json").read_text())
    assert meta["block_costs_seconds"] == staged["block_costs_seconds"]  # what a resume reads
    rates = [t["steady_samples_per_second"] for t in staged["stage_timings"]]
    assert staged["steady_samples_per_second"] == min(rates)  # the pipeline's: the slowest
    assert broken["accuracy"] is None and "CIFAR-10" in broken["error"]
    assert (
        (out / "compare.csv").read_text().splitlines()[0].startswith("label,rule,engine,accuracy")
    )
    for png in ("learning_curves.png", "accuracy_vs_time.png", "per_block_accuracy.png"):
        assert (out / png).stat().st_size > 1000
    assert (out / "compare.md").read_text().startswith("| run | engine | test acc |")
    capsys.readouterr()
    assert run(["compare", "--suite", str(suite), "--out", str(out)], monkeypatch) == 0
    again = json.loads((out / "compare.json").read_text())
    assert [r["reused"] for r in again] == [True, True, False]  # the probe was reused too
    assert "backprop: acc" in capsys.readouterr().out


def test_suite_problems_are_reported_together(tmp_path: Path) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text(
        "entries:\n  - {name: a, rule: {name: backpro}}\n  - {name: a, rul: {}}\nextra: 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_suite(suite, tmp_path)
    problems = [p.split(": ", 1)[1] for p in info.value.problems]
    assert problems[0].startswith("extra: unknown key")
    assert any(
        "rule.name: unknown rule 'backpro' (did you mean 'backprop'?)" in p for p in problems
    )
    assert any(
        "entries[1]: expected a mapping with at least 'name' and 'rule'" in p for p in problems
    )


def test_staged_boundaries_go_to_the_staged_run_only(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        SUITE.split("entries:")[0] + "entries:\n  - {name: bp, rule: {name: backprop},"
        " staged: {stages: 2, schedule: naive, boundaries: [1]}}\n"
    )
    variants = load_suite(suite, tmp_path).variants
    assert [v.config.engine.boundaries for v in variants] == [None, None, (1,), None]  # + probe


@pytest.mark.parametrize(
    "suite", sorted((Path(__file__).parents[2] / "configs" / "suites").glob("*.yaml"))
)
def test_shipped_suites_load(suite: Path, tmp_path: Path) -> None:
    assert load_suite(suite, tmp_path).variants


def test_a_failed_run_is_summarised_by_its_cause_not_torchruns_summary(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(
        "launching 2 stages: python -m torch.distributed.run ...\n"
        "[rank1]: Traceback (most recent call last):\n"
        "[rank1]: RuntimeError: Connection closed by peer [127.0.0.1]:4242\n"
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
        "  error_file: <N/A>\n"
    )
    assert failure_reason(log, 1) == (
        "exit 1: [rank1]: RuntimeError: Connection closed by peer [127.0.0.1]:4242"
    )
    log.write_text(
        "terminate called without an active exception\n"
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
        "Root Cause (first observed failure):\n[0]:\n  rank      : 1 (local_rank: 1)\n"
        "  exitcode  : -6 (pid: 26793)  (SIGABRT)\n  error_file: <N/A>\n"
        "  traceback : Signal 6 (SIGABRT) received by PID 26793\n"
    )
    assert failure_reason(log, 1) == "exit 1: traceback : Signal 6 (SIGABRT) received by PID 26793"
    log.write_text("[rank 0] error: engine.stages is 3 but the stack has 2 blocks\n")
    assert failure_reason(log, 2).endswith("error: engine.stages is 3 but the stack has 2 blocks")
