"""A staged row's two speed-ups (one process on one device, on the same cores) and its
sentence, from fabricated summaries; probes are baselines, not rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beyond_backprop.compare.execute import Outcome
from beyond_backprop.compare.report import HEADERS, formatted, rows, write_reports
from beyond_backprop.compare.speedups import staged_sentences
from beyond_backprop.compare.suite import Variant
from tests.helpers import tiny_config


def variant(entry: str, rule: str, threads: int, stages: int = 1, schedule: str | None = None,
            probe: str | None = None) -> Variant:  # fmt: skip
    engine: dict[str, Any] = {"threads": threads}
    if stages > 1:
        engine |= {"stages": stages, "schedule": schedule}
    config = tiny_config(name=entry, rule={"name": rule}, engine=engine)
    return Variant(entry, rule, config, stages, schedule, probe)


def summary(steady: float, waits: tuple[float, float] | None = None, steps: int = 30
            ) -> dict[str, Any]:  # fmt: skip
    figures: dict[str, Any] = {
        "accuracy": 0.9,
        "train_seconds": 10.0,
        "steady_samples_per_second": steady,
        "steady_steps": steps,
    }
    if waits is not None:
        figures["stage_timings"] = [
            {"rank": r, "train_seconds": 10.0, "recv_wait_seconds": 10.0 * w}
            for r, w in enumerate(waits)
        ]
    return figures


@pytest.fixture
def table() -> list[dict[str, Any]]:
    outcomes = [
        Outcome(variant("backprop", "backprop", 2), summary=summary(1000.0)),
        Outcome(variant("backprop", "backprop", 1, 2, "gpipe"), summary=summary(400.0, (0.5, 0.4))),
        Outcome(variant("backprop", "backprop", 1, probe="before"), summary=summary(800.0)),
        Outcome(variant("dgl", "dgl", 2), summary=summary(1000.0)),
        Outcome(variant("dgl", "dgl", 1, 2, "pipelined"), summary=summary(900.0, (0.02, 0.05))),
        Outcome(variant("dgl", "dgl", 1, probe="before"), summary=summary(600.0)),
    ]
    return rows(outcomes)


def test_staged_rows_are_measured_against_one_process_on_one_device_and_the_same_cores(
    table: list[dict[str, Any]],
) -> None:
    assert [row["label"] for row in table] == ["backprop", "backprop-2stage-gpipe", "dgl",
                                                "dgl-2stage-pipelined"]  # fmt: skip
    dgl = table[3]
    assert dgl["speedup_one_device"] == pytest.approx(900 / 600)  # the probe: 1 thread
    assert dgl["speedup_same_cores"] == pytest.approx(900 / 1000)  # the 2-thread row
    assert dgl["throughput_vs_backprop"] == pytest.approx(0.9)
    assert table[2]["speedup_same_cores"] is None  # one-process rows have no staged figures
    assert "staged vs 1 process, same cores" in HEADERS.values()
    assert "staged vs 1 process, 1 device" in HEADERS.values()


def test_every_staged_row_gets_a_sentence_from_its_figures(table: list[dict[str, Any]]) -> None:
    gpipe, dgl = staged_sentences(table)
    assert dgl == (
        "dgl on 2 stages (pipelined): 1.5x one process on one device (ideal 2x), 0.9x on the "
        "same 2 cores: the stages rarely wait (5% of their step time at most), but each stage "
        "has 1 of the 2 threads."
    )
    assert gpipe.startswith("backprop on 2 stages (gpipe, 4 micro-batches): 0.5x one process "
                            "on one device (ideal 2x), 0.4x on the same 2 cores: ")  # fmt: skip
    assert "bubble idles each stage 20% of a step" in gpipe  # (K-1)/(M+K-1) = 1/5
    assert "a stage waits for messages 50% of its step time" in gpipe
    markdown = formatted(table, "markdown")
    assert markdown.rstrip().endswith(dgl)


def test_a_one_process_row_on_other_threads_is_not_called_the_same_cores() -> None:
    outcomes = [
        Outcome(variant("dgl", "dgl", 1), summary=summary(1000.0)),  # 1 thread, stages use 2
        Outcome(variant("dgl", "dgl", 1, 2, "pipelined"), summary=summary(900.0, (0.0, 0.0))),
        Outcome(variant("dgl", "dgl", 1, probe="before"), summary=summary(600.0)),
    ]
    staged = rows(outcomes)[1]
    assert staged["speedup_same_cores"] is None and staged["speedup_one_device"] == 1.5
    assert "same" not in staged_sentences([staged])[0].split(":")[1]


def test_the_report_ends_with_the_scaling_plot(table: list[dict[str, Any]], tmp_path: Path) -> None:
    written = write_reports(table, tmp_path)
    assert (tmp_path / "scaling_simulated.png") in written
    assert (tmp_path / "compare.md").read_text().rstrip().endswith("](scaling_simulated.png)")


def test_the_one_device_baseline_pools_both_halves_of_the_probe() -> None:
    """The halves before and after the staged run count as one run: their samples over their
    time (30 steps at 500/s and 10 at 1000/s: 40 steps in 0.07 step-seconds per sample)."""
    outcomes = [
        Outcome(variant("dgl", "dgl", 1, probe="before"), summary=summary(500.0, steps=30)),
        Outcome(variant("dgl", "dgl", 1, 2, "pipelined"), summary=summary(900.0, (0.0, 0.0))),
        Outcome(variant("dgl", "dgl", 1, probe="after"), summary=summary(1000.0, steps=10)),
    ]
    staged = rows(outcomes)[0]
    assert staged["one_device_samples_per_second"] == pytest.approx(40 / (30 / 500 + 10 / 1000))
    assert staged["speedup_one_device"] == pytest.approx(900 * (30 / 500 + 10 / 1000) / 40)
    assert staged["one_device_halves"] == [500.0, 1000.0]


def test_a_row_with_measured_block_costs_says_how_they_cap_its_speed_up() -> None:
    """Stages [0] | [1, 2, 3] of blocks costing 0.4, 0.3, 0.2, 0.1 s: the busier stage holds
    60% of the work, so 2 stages can reach 1 / 0.6 = 1.7x at most."""
    figures = summary(900.0, (0.3, 0.0)) | {
        "stages": [[0, 1], [1, 4]],
        "block_costs_seconds": [0.4, 0.3, 0.2, 0.1],
    }
    outcomes = [
        Outcome(variant("dgl", "dgl", 1, 2, "pipelined"), summary=figures),
        Outcome(variant("dgl", "dgl", 1, probe="before"), summary=summary(600.0)),
    ]
    (text,) = staged_sentences(rows(outcomes))
    assert "its blocks' measured work splits 40% | 60% over the stages, which caps the " \
           "speed-up at 1.7x; a stage waits for messages 30%" in text  # fmt: skip
