"""Timeline pictures of the StageEngine's schedules: which stage works on which batch when.

Every staged schedule in the registry (``schedule_names(staged=True)``) is drawn with the first
rule it serves (``check_schedule``; rules in ``PREFERRED`` order, then the rest by name), on
K stages of the ``simulated`` architecture (one block per stage, each block's forward a 20 ms
wait and its backward 40 ms: clean timing on a 2-core machine), one thread each, for a few
steps. One PNG per schedule, ``timeline_<schedule>.png``: one row per stage, a bar per step
labelled with its batch index, hatched where the stage was blocked waiting for another. It
also prints one Markdown line per schedule (the rules it serves and the staleness it logged)
for docs/engines.md.

    python -m benchmarks.plot_timeline --out docs/images [--stages 4] [--steps 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.bench_parallel import RULE_OPTIONS, measure
from beyond_backprop.config.engine import EngineConfig
from beyond_backprop.engines.schedules import check_schedule, schedule_class, schedule_names
from beyond_backprop.rules import RULES, default_wirings

PREFERRED = ["backprop", "dgl", "ddg", "dni", "dfa", "loco", "local_parallel"]
"""Rules tried first when picking the one a schedule is drawn with (they run on the simulated
architecture; any other rule that a schedule alone serves comes after, by name)."""


def rules_served(schedule: str, stages: int) -> list[str]:
    """The rules (with ``RULE_OPTIONS``) that ``schedule`` can train, in ``PREFERRED`` order."""
    order = PREFERRED + sorted(set(RULES.names()) - set(PREFERRED))
    engine = EngineConfig(stages=stages, schedule=schedule)
    served = []
    for rule in order:
        cls = RULES.get(rule)
        wiring = cls(cls.Config(**RULE_OPTIONS.get(rule, {}))).wiring
        if check_schedule(engine, rule, wiring, default_wirings()) is None:
            served.append(rule)
    return served


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
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--schedules", nargs="+", help="default: every staged schedule")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lines = []
    for schedule in args.schedules or schedule_names(staged=True):
        served = rules_served(schedule, args.stages)
        if not served:
            print(f"- `{schedule}`: serves none of the registered rules (not drawn)")
            continue
        rule = served[0]
        per_rank = schedule_class(schedule, staged=True).stages_per_rank  # as bench_scaling
        model = {"arch": "simulated", "blocks": args.stages * per_rank, "width": 16,
                 "rows": 32, "forward_ms": 20.0 / per_rank,
                 "backward_ms": 40.0 / per_rank}  # fmt: skip
        case = {"rule": rule, "stages": args.stages, "batch": 32, "steps": args.steps,
                "warmup": 2, "microbatches": 4, "engine": "staged", "threads": 1,
                "schedule": schedule, "model": model,
                "rule_options": RULE_OPTIONS.get(rule)}  # fmt: skip
        figures = measure(case)
        figure, ax = plt.subplots(figsize=(10, 0.5 + 0.45 * args.stages), constrained_layout=True)
        speed = figures["samples_per_second"]
        draw(ax, figures["timeline"], f"{rule}, schedule {schedule}: {speed:.0f} samples/s")
        path = args.out / f"timeline_{schedule}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        if "staleness_max" in figures:
            stale = (f"staleness logged: mean {figures['staleness_mean']:.1f}, "
                     f"at most {figures['staleness_max']:.0f} steps")  # fmt: skip
        else:
            stale = "no staleness logged"
        lines.append(f"- `{schedule}` ({stale}; serves {', '.join(served)}): "
                     f"![{schedule}](images/{path.name})")  # fmt: skip
        print(f"wrote {path}", flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
