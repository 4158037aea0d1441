"""Scaling of layer-parallel training past this machine's cores, on simulated devices.

Each block of the network is a ``simulated`` block (``models/simulated.py``): its forward and
backward passes are timed waits, so K processes behave like K accelerators whose compute does
not compete for the CPU, while the messages, the Python and the schedules are real. For every
rule and K: samples/s of the K-block network in one process and on K stages (one block each)
under every schedule that serves the rule's wiring, and

    efficiency = staged samples/s / (K x one-process samples/s of the same network)

(1 is a perfect pipeline: every stage busy all the time), with each stage's busy share.

    python -m benchmarks.bench_scaling --stages 1 2 4 8 16 --rules backprop dgl dfa loco \
        local_parallel dni --json FILE [--forward-ms 20 --backward-ms 40] [--plot PNG]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.bench_parallel import measure
from benchmarks.common import environment
from beyond_backprop.config.engine import EngineConfig
from beyond_backprop.engines.schedules import check_schedule, schedule_names
from beyond_backprop.rules import RULES

RULE_OPTIONS: dict[str, dict[str, Any]] = {"local_parallel": {"overlap": 1}}
"""Options that give a rule its layer-parallel form (local updates: with the overlap)."""


def schedules_for(rule: str, stages: int) -> list[str]:
    """Every staged schedule that serves the rule's wiring (with ``RULE_OPTIONS``)."""
    cls = RULES.get(rule)
    wiring = cls(cls.Config(**RULE_OPTIONS.get(rule, {}))).wiring
    return [
        name
        for name in schedule_names(staged=True)
        if check_schedule(EngineConfig(stages=stages, schedule=name), rule, wiring, {}) is None
    ]


def case(rule: str, k: int, args: argparse.Namespace, engine: str, schedule: str | None) -> Any:
    model = {"arch": "simulated", "blocks": k, "width": 16, "rows": args.batch,
             "forward_ms": args.forward_ms, "backward_ms": args.backward_ms}  # fmt: skip
    return {"rule": rule, "stages": k, "batch": args.batch, "steps": args.steps,
            "warmup": args.warmup, "microbatches": args.microbatches, "engine": engine,
            "threads": 1, "schedule": schedule, "model": model,
            "rule_options": RULE_OPTIONS.get(rule)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--rules", nargs="+", default=["backprop", "dgl", "dfa", "dni"])
    parser.add_argument("--forward-ms", type=float, default=20.0)
    parser.add_argument("--backward-ms", type=float, default=40.0)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--microbatches", type=int, default=4)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    record = {"benchmark": "scaling", "args": {k: str(v) for k, v in vars(args).items()},
              "environment": environment(), "rows": rows}  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    for k in args.stages:
        for rule in args.rules:
            one = measure(case(rule, k, args, "local", None))["samples_per_second"]
            rows.append({"rule": rule, "stages": k, "schedule": "one process",
                         "samples_per_second": one, "efficiency": 1.0 / k})  # fmt: skip
            print(f"K={k:2d} {rule:16s} one process      {one:8.1f} samples/s", flush=True)
            for schedule in schedules_for(rule, k) if k > 1 else []:
                figures = measure(case(rule, k, args, "staged", schedule))
                speed = figures["samples_per_second"]
                busy = [round(b, 2) for b in figures.get("stage_busy_share", [])]
                rows.append({"rule": rule, "stages": k, "schedule": schedule,
                             "samples_per_second": speed, "efficiency": speed / (k * one),
                             "stage_busy_share": busy})  # fmt: skip
                print(f"K={k:2d} {rule:16s} {schedule:16s} {speed:8.1f} samples/s, "
                      f"efficiency {speed / (k * one):.2f}, busy {busy}", flush=True)  # fmt: skip
            # written after every rule, so a run cut short keeps what it measured
            args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.json}")
    if args.plot is not None:
        plot(rows, args.plot)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Efficiency against K, one line per (rule, schedule)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    lines = sorted({(r["rule"], r["schedule"]) for r in rows if r["schedule"] != "one process"})
    for rule, schedule in lines:
        points = sorted((r["stages"], r["efficiency"]) for r in rows
                        if (r["rule"], r["schedule"]) == (rule, schedule))  # fmt: skip
        axes.plot(*zip(*points, strict=True), marker="o", label=f"{rule} ({schedule})")
    ks = sorted({r["stages"] for r in rows})
    axes.set_xscale("log", base=2)
    axes.set_xticks(ks, [str(k) for k in ks])
    axes.set_ylim(0, 1.05)
    axes.set_xlabel("stages K (simulated devices, one block each)")
    axes.set_ylabel("efficiency = samples/s / (K x 1 process)")
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
