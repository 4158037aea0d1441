"""What each staged row of a comparison reaches and why, in one sentence made from its
figures; and the scaling plot the report ends with.

A staged row's two speed-ups (``compare.report``) are its steady rate over the same rule in
one process on one device (one stage's threads) and on the same cores (all the stages'
threads). The reasons come from the run's own figures: how its blocks' measured costs split
over the stages (``block_costs_seconds``; the busiest stage's share caps the speed-up at
1 / share), how long its stages waited for messages (``stage_timings``), the threads each
stage had, and for back-propagation's
micro-batched baselines the bubble of the pipeline, (K - 1) / (M + K - 1) of a step for K
stages and M micro-batches (GPipe, arXiv 1811.06965, Sec. 2.2).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beyond_backprop.engines.schedules import schedule_class

BASELINE_RULE = "backprop"
"""The rule whose staged rows are baselines: they say what back-propagation reaches."""
WAITS_MUCH = 0.15
"""A stage that waits for messages this share of its step time or more is said to wait."""


@dataclass(frozen=True)
class Plot:
    """A committed figure the report shows beside the table."""

    path: Path
    caption: str


SCALING_PLOT = Plot(
    Path(__file__).resolve().parents[3] / "docs" / "images" / "scaling_simulated.png",
    "efficiency of each schedule on K simulated devices (python -m benchmarks.bench_scaling)",
)
"""Layer-parallel scaling past this machine's cores: what the staged rows' schedules reach
when blocks are slow enough for messages not to matter."""


def copy_scaling_plot(out: Path) -> Path | None:
    """The scaling plot copied into ``out`` (so ``compare.md`` shows it); None when this
    installation has no docs folder."""
    if not SCALING_PLOT.path.is_file():
        return None
    target = out / SCALING_PLOT.path.name
    shutil.copyfile(SCALING_PLOT.path, target)
    return target


def staged_sentences(table: list[dict[str, Any]]) -> list[str]:
    """One sentence per staged row that trained: its speed-ups and their reasons."""
    return [sentence(row) for row in table if row.get("stages", 1) > 1 and not row.get("error")]


def sentence(row: dict[str, Any]) -> str:
    """``dgl on 2 stages (pipelined): 1.6x one process on one device (ideal 2x), 0.9x on the
    same 2 cores: the stages rarely wait (3% of their step time at most), but each has 1 of
    the 2 threads.``"""
    k, per_stage = row["stages"], row.get("threads")
    total = per_stage * k if per_stage else None
    micro = _microbatched(row)
    how = f"{row['schedule']}, {row['microbatches']} micro-batches" if micro else row["schedule"]
    head = f"{row.get('entry', row['label'])} on {k} stages ({how})"
    one_device, same = row.get("speedup_one_device"), row.get("speedup_same_cores")
    figures = []
    if one_device is not None:
        figures.append(f"{one_device:.1f}x one process on one device (ideal {k}x)")
    if same is not None:
        figures.append(f"{same:.1f}x on the same {total} cores" if total else
                       f"{same:.1f}x on the same cores")  # fmt: skip
    if not figures:
        return f"{head}: no steady rate to compare (too few steps past the warm-ups)."
    return f"{head}: {', '.join(figures)}: {_reasons(row, micro, total, same)}."


def _reasons(row: dict[str, Any], micro: bool, total: int | None, same: float | None) -> str:
    k, per_stage = row["stages"], row.get("threads")
    parts = []
    if row["rule"] == BASELINE_RULE:
        parts.append("back-propagation holds every stage until the gradient comes back")
        if micro:
            m = row["microbatches"]
            parts.append(f"with {m} micro-batches the pipeline's bubble idles each stage "
                         f"{(k - 1) / (m + k - 1):.0%} of a step and every micro-batch pays "
                         "its own messages")  # fmt: skip
    shares = _work_shares(row)
    if shares is not None:
        split = " | ".join(f"{share:.0%}" for share in shares)
        parts.append(f"its blocks' measured work splits {split} over the stages, which caps "
                     f"the speed-up at {1 / max(shares):.1f}x")  # fmt: skip
    wait = _largest_wait(row)
    if wait is not None:
        rarely = f"the stages rarely wait ({wait:.0%} of their step time at most)"
        parts.append(f"a stage waits for messages {wait:.0%} of its step time"
                     if wait >= WAITS_MUCH else rarely)  # fmt: skip
    text = "; ".join(parts) or "no stage timings were recorded"
    if per_stage and total and per_stage < total:
        link = "but" if same is not None and same < 1 else "and"
        text += f", {link} each stage has {per_stage} of the {total} threads"
    return text


def _work_shares(row: dict[str, Any]) -> list[float] | None:
    """Each stage's share of the blocks' measured costs (None when the costs were not
    measured, i.e. the boundaries were given, or a rank holds several stages)."""
    costs, stages = row.get("block_costs_seconds"), row.get("stage_blocks")
    if not costs or not stages or len(stages) != row["stages"] or not sum(costs):
        return None
    return [sum(costs[start:stop]) / sum(costs) for start, stop in stages]


def _largest_wait(row: dict[str, Any]) -> float | None:
    """The largest share of a stage's step time spent waiting for a message."""
    shares = [
        t["recv_wait_seconds"] / t["train_seconds"]
        for t in row.get("stage_timings") or []
        if t.get("train_seconds")
    ]
    return min(1.0, max(shares)) if shares else None


def _microbatched(row: dict[str, Any]) -> bool:
    """Whether the row's schedule splits batches into ``engine.microbatches``."""
    try:
        return schedule_class(row["schedule"], staged=True).microbatched
    except KeyError:  # a schedule this process does not know
        return False
