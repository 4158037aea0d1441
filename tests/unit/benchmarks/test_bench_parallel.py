"""The benchmark's steady-state reading of fabricated traces (no timing here)."""

from __future__ import annotations

from typing import Any

import pytest
from benchmarks.bench_parallel import median_round, summarise


def pipeline(stages: int, steps: int, seconds: float) -> list[dict[str, Any]]:
    """A perfect pipeline: stage r runs step t in [(t + r) s, (t + r + 1) s], waiting for its
    input for the first 0.25 s of every step but the first stage's."""
    records = []
    for r in range(stages):
        trace = [(t, (t + r) * seconds, (t + r + 1) * seconds) for t in range(steps)]
        waits = [(a, a + 0.25 * seconds) for _, a, _ in trace] if r else []
        records.append({"rank": r, "trace": trace, "waits": waits, "cpu": [0.002] * steps,
                        "staleness": [float(r)] * (steps - 2)})  # fmt: skip
    return records


def test_fill_and_drain_do_not_count_against_the_pipeline() -> None:
    # 8 stages, 20 steps, 2 of warm-up, one step per second: every stage runs 18 steps in
    # 18 s, while the span from the first stage's start to the last one's end is 25 s
    figures = summarise(pipeline(8, 20, 1.0), warmup=2, batch=10)
    assert figures["samples_per_second"] == pytest.approx(10.0)
    assert figures["samples_per_second_span"] == pytest.approx(180 / 25)
    assert figures["stage_samples_per_second"] == pytest.approx([10.0] * 8)
    assert figures["stage_busy_share"] == pytest.approx([1.0] + [0.75] * 7)
    assert figures["cpu_ms_per_step"] == pytest.approx([2.0] * 8)
    assert figures["staleness_mean"] == pytest.approx(3.5)
    assert figures["staleness_max"] == 7.0


def test_the_slowest_stage_sets_the_rate() -> None:
    records = pipeline(2, 10, 1.0)
    # stage 1 takes 2 s per step after the warm-up: the pipeline runs at its pace
    records[1]["trace"] = [(t, 2.0 * t, 2.0 * t + 2.0) for t in range(10)]
    figures = summarise(records, warmup=1, batch=4)
    assert figures["stage_samples_per_second"] == pytest.approx([4.0, 2.0])
    assert figures["samples_per_second"] == pytest.approx(2.0)


def test_one_process_has_no_stage_figures() -> None:
    record = {"rank": 0, "trace": [(t, 0.5 * t, 0.5 * t + 0.5) for t in range(6)],
              "waits": [], "cpu": [0.001] * 6, "staleness": []}  # fmt: skip
    figures = summarise([record], warmup=2, batch=8)
    assert figures["samples_per_second"] == pytest.approx(16.0)
    assert "stage_busy_share" not in figures and "staleness_mean" not in figures


def test_repeats_keep_the_median_round_and_every_rounds_rate() -> None:
    rounds = [{"samples_per_second": v, "id": i} for i, v in enumerate([30.0, 10.0, 20.0, 40.0])]
    chosen = median_round(rounds)
    assert chosen["id"] == 2  # 20: the lower median of four
    assert chosen["samples_per_second_rounds"] == [30.0, 10.0, 20.0, 40.0]
