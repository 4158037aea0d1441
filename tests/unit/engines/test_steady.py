"""The steady-state rate counts training steps only, past a warm-up after the start and after
every evaluation or checkpoint, and survives a resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from beyond_backprop.engines.steady import STEADY_WARMUP, SteadyClock
from beyond_backprop.run import resume_run, start_run
from tests.helpers import tiny_config


def test_warm_up_steps_after_each_pause_are_left_out() -> None:
    clock = SteadyClock()
    for _ in range(STEADY_WARMUP + 2):  # the first STEADY_WARMUP steps are not counted
        clock.add(1.0, 10)
    assert (clock.steps, clock.samples, clock.seconds) == (2, 20, 2.0)
    clock.pause()
    for _ in range(STEADY_WARMUP):
        clock.add(100.0, 10)  # slow steps right after an evaluation: left out
    clock.add(2.0, 10)
    assert clock.steps == 3 and clock.rate() == pytest.approx(30 / 4.0)
    assert SteadyClock().rate() is None  # nothing counted: no rate
    staged = SteadyClock(stages=3)  # a drained pipeline of 3 stages fills in 2 more steps
    for _ in range(STEADY_WARMUP + 2):
        staged.add(1.0, 1)
    assert staged.steps == 0 and staged.warmup == STEADY_WARMUP + 2


def test_summary_counts_the_steps_between_evaluations(tmp_path: Path) -> None:
    # synthetic: 8 steps per epoch, 2 epochs, evaluated every 5 steps and after each epoch,
    # checkpointed after each epoch: pauses after steps 5, 8, 10, 15 (and 16, the end)
    config = tiny_config(tmp_path, train={"eval_every_steps": 5})
    summary = start_run(config).summary
    assert summary["total_steps"] == 16
    segments = [5, 3, 2, 5, 1]  # steps between pauses
    counted = sum(max(0, n - STEADY_WARMUP) for n in segments)
    assert summary["steady_steps"] == counted == 4
    assert summary["steady_samples_per_second"] > 0


def test_a_resumed_run_keeps_the_steady_figures_of_its_first_session(tmp_path: Path) -> None:
    whole = start_run(tiny_config(tmp_path / "a", train={"epochs": 3})).summary
    stopped = start_run(tiny_config(tmp_path / "b", train={"epochs": 3}), stop_after=16)
    resumed = resume_run(stopped.run_dir).summary
    assert resumed["steady_steps"] == whole["steady_steps"] == 3 * (8 - STEADY_WARMUP)
