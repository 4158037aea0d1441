"""``stale_error`` (DFA) and ``stale_overlap`` (LoCo) on 2 spawned ranks (gloo): the lower
stage never waits for the signal of its current step, logs the configured staleness, and a
run stopped at step 5 resumes bitwise as the run that never stopped."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from beyond_backprop.config import ExperimentConfig, load_config
from beyond_backprop.engines.local import StageEngine
from tests.integration.staged_harness import (
    experiment_for,
    spawn,
    stopped_and_resumed,
    train_staged,
)
from tests.integration.test_staged import assert_states, ok

SMOKE = Path(__file__).parents[2] / "configs" / "smoke"
CASES = [("dfa", "stale_error"), ("loco", "stale_overlap")]


def stale_config(rule: str, schedule: str, staleness: int, **train: Any) -> ExperimentConfig:
    return load_config(SMOKE / f"{rule}.yaml", [
        "engine.stages=2", f"engine.schedule={schedule}", f"engine.staleness={staleness}",
        "engine.threads=1", "engine.stop_check_every=1", "train.diagnostics_every=null",
        *(f"train.{key}={value}" for key, value in train.items()),
    ])  # fmt: skip


def _held_until_lower_stepped(rank: int, cfg: ExperimentConfig, flags: str) -> dict[str, Any]:
    """Rank 1 holds the signal of step t until rank 0 has stepped its optimizer at step t
    (a flag file, or 3 s); each rank reports what it saw."""
    engine = StageEngine(experiment_for(cfg, False), [1])
    report: dict[str, Any] = {"held": [], "staleness": []}
    record = engine._record_terms

    def recording(terms, epoch):  # type: ignore[no-untyped-def]
        report["staleness"].extend(v for (_, name), v in terms.items() if name == "staleness")
        record(terms, epoch)

    engine._record_terms = recording  # type: ignore[method-assign]
    if rank == 0:
        optimizers = engine.stepper.optimizers
        step_optimizers = optimizers.step

        def stepping(blocks):  # type: ignore[no-untyped-def]
            step_optimizers(blocks)
            (Path(flags) / str(engine.step)).touch()

        optimizers.step = stepping  # type: ignore[method-assign]
    else:
        channel = engine.stepper.stage.channel
        send = channel.send_named

        def held(messages, dst):  # type: ignore[no-untyped-def]
            flag, deadline = Path(flags) / str(engine.step), time.monotonic() + 3
            while not flag.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            report["held"].append(flag.exists())
            send(messages, dst)

        channel.send_named = held  # type: ignore[method-assign]
    engine.train()
    return report


@pytest.mark.parametrize(("rule", "schedule"), CASES)
def test_the_lower_stage_steps_before_the_signal_of_its_step_is_sent(
    rule: str, schedule: str, tmp_path: Path
) -> None:
    (tmp_path / "flags").mkdir()
    cfg = stale_config(rule, schedule, 1, max_steps=4)
    outcomes = spawn(tmp_path, _held_until_lower_stepped, cfg, str(tmp_path / "flags"))
    ok(outcomes)
    rank0, rank1 = (outcome["result"] for outcome in outcomes)
    # every step's signal waited for stage 0's update of that step, and stage 0 did update
    assert rank1["held"] == [True] * 4
    assert rank0["staleness"] == [1.0] * 4 and rank1["staleness"] == [0.0] * 4


def _stop_at_5_and_resume(rank: int, cfg: ExperimentConfig, run_dir: str) -> dict[str, Any]:
    return stopped_and_resumed(rank, cfg, run_dir, lambda schedule: len(schedule.in_flight))


@pytest.mark.parametrize(("rule", "schedule"), CASES)
def test_stop_at_step_5_resumes_bitwise_with_the_steps_in_flight(
    rule: str, schedule: str, tmp_path: Path
) -> None:
    cfg = stale_config(rule, schedule, 2, max_steps=9)
    (tmp_path / "run").mkdir()
    outcomes = spawn(tmp_path, _stop_at_5_and_resume, cfg, str(tmp_path / "run"))
    resumed = ok(outcomes)
    assert resumed["pending"] == 2 and outcomes[1]["result"]["pending"] == 0
    assert resumed["steps"] == 9
    (tmp_path / "whole").mkdir()
    whole = ok(spawn(tmp_path / "whole", train_staged, cfg, False, [1]))
    assert_states(resumed["stack"], whole["stack"], exact=True)
    assert_states(resumed["locals"], whole["locals"], exact=True)
