"""Timeline pictures of the StageEngine's schedules: which stage works on which batch when.

Runs a short traced staged run per schedule (spawned processes, one thread each, the
``bench_parallel`` stack) and draws one row per stage: a bar per step labelled with its batch
index, hatched where the stage was blocked waiting for another stage.

    python -m benchmarks.plot_timeline --out docs/images [--stages 2] [--steps 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.bench_parallel import measure

CASES = [
    ("backprop", "naive"),
    ("backprop", "gpipe"),
    ("dfa", "naive"),
    ("dgl", "pipelined"),
    ("dgl", "async"),
    ("dni", "naive"),
    ("dni", "decoupled"),
]


def draw(ax: Any, timeline: list[dict[str, Any]], title: str) -> None:
    colours = plt.get_cmap("tab10")
    for row in timeline:
        y = row["rank"]
        for step, start, end in row["steps"]:
            ax.barh(
                y, end - start, left=start, color=colours(step % 10), edgecolor="black", height=0.6
            )
            ax.text((start + end) / 2, y, str(step), ha="center", va="center", fontsize=7)
        for start, end in row["waits"]:
            ax.barh(y, end - start, left=start, color="white", hatch="///", edgecolor="grey",
                    height=0.6, alpha=0.9)  # fmt: skip
    ax.set_yticks([r["rank"] for r in timeline], [f"stage {r['rank']}" for r in timeline])
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--stages", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    fig, axes = plt.subplots(len(CASES), 1, figsize=(10, 2.0 * len(CASES)), constrained_layout=True)
    for ax, (rule, schedule) in zip(axes, CASES, strict=True):
        case = {"rule": rule, "stages": args.stages, "batch": 128, "steps": args.steps,
                "warmup": 0, "microbatches": 4, "engine": "staged", "threads": 1,
                "schedule": schedule}  # fmt: skip
        figures = measure(case)
        draw(
            ax,
            figures["timeline"],
            f"{rule}, schedule {schedule}: {figures['samples_per_second']:.0f} samples/s",
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"timeline_{args.stages}stages.png"
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
