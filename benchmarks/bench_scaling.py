"""Scaling of layer-parallel training past this machine's cores, on simulated devices.

Each block of the network is a ``simulated`` block (``models/simulated.py``): its forward and
backward passes are timed waits, so K processes behave like K accelerators whose compute does
not compete for the CPU, while the messages, the Python and the schedules are real. For every
rule and K: samples/s of the K-block network in one process and on K stages (one block each)
under every staged schedule that serves the rule's wiring (from the schedule registry), and

    efficiency = staged samples/s / (K x one-process samples/s of the same network)

(1 is a perfect pipeline: every stage busy all the time; the one process pays its Python and
messages serially, so a pipeline that hides them can pass 1). ``efficiency_ideal`` divides by
the perfect pipeline's batch / (forward + backward wait) instead, which no overhead inflates.
A rule whose top block never runs in training (LoCo's classifier: the probes stand in for
it) gets one more block, on the top stage, so K stages still hold K blocks that learn.
Samples/s are steady-state figures (``bench_parallel.summarise``: each stage's own post-warm-up
window, the slowest stage's rate). Each row also has each stage's busy share and CPU ms per
step, the mean and largest logged ``staleness`` where the schedule logs one, and for
the micro-batched schedules (``Schedule.microbatched``: pipeline-parallel back-propagation)
the bubble bound M / (M + K - 1) of M micro-batches on K stages (GPipe,
arXiv 1811.06965, Sec. 2.2).

Above ``--all-schedules-up-to`` stages only each rule's best schedule at the largest K
measured with all of them is run. Wall time is mostly starting processes (20-60 s per staged
case on 2 cores, more at K = 16): ``--stages 8 16 --rules dgl dni ddg backprop`` (30 cases)
took 14 minutes on 2 loaded cores; the full default command (about 80 cases) is
estimated at 45 minutes; ``--rules`` and ``--stages`` cut it down:

    python -m benchmarks.bench_scaling --stages 1 2 4 8 16 --json FILE --plot PNG \
        [--rules backprop ddg dgl dfa loco local_parallel dni] [--forward-ms 20 --backward-ms 40]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.bench_parallel import RULE_OPTIONS, measure, schedules_for
from benchmarks.common import environment
from beyond_backprop.engines.schedules import schedule_class
from beyond_backprop.rules import RULES

TARGETS = (0.9, 0.8)
"""Efficiency targets drawn on the plot: forward-only pipelines, and the other local rules."""


def case(rule: str, k: int, args: argparse.Namespace, engine: str, schedule: str | None) -> Any:
    # a schedule that holds several pipeline stages per process (interleaved, zero-bubble V)
    # gets as many blocks per process, each costing its share: the same compute per process
    per_rank = schedule_class(schedule, staged=True).stages_per_rank if schedule else 1
    blocks = k * per_rank + idle_top_blocks(rule, k * per_rank + 1)
    model = {"arch": "simulated", "blocks": blocks, "width": 16, "rows": args.batch,
             "forward_ms": args.forward_ms / per_rank,
             "backward_ms": args.backward_ms / per_rank}  # fmt: skip
    steps, warmup = (args.steps, args.warmup) if engine == "staged" else (args.local_steps, 2)
    return {"rule": rule, "stages": k, "batch": args.batch, "steps": steps,
            "warmup": warmup, "microbatches": microbatches(args, k), "engine": engine,
            "threads": 1, "schedule": schedule, "model": model,
            "rule_options": RULE_OPTIONS.get(rule),
            "engine_options": {"staleness": args.staleness}}  # fmt: skip


def idle_top_blocks(rule: str, blocks: int) -> int:
    """How many top blocks of a ``blocks``-block network never run in training under
    ``rule`` (a self-supervised rule's classifier, which its probes stand in for): they
    share the top stage instead of taking a device of their own, so the K stages hold K
    blocks that learn."""
    cls = RULES.get(rule)
    active = cls(cls.Config(**(RULE_OPTIONS.get(rule) or {}))).active_blocks(0, blocks)
    return blocks - (max(active) + 1)


def microbatches(args: argparse.Namespace, k: int) -> int:
    """Micro-batches per batch: ``--microbatches``, or one per stage when it is 0."""
    return int(args.microbatches) or k


def staged_row(rule: str, k: int, schedule: str, one: float, args: argparse.Namespace) -> Any:
    figures = measure(case(rule, k, args, "staged", schedule))
    speed = figures["samples_per_second"]
    row = {"rule": rule, "stages": k, "schedule": schedule, "samples_per_second": speed,
           "efficiency": speed / (k * one),
           "efficiency_ideal": speed / ideal(args),
           "stage_busy_share": [round(b, 3) for b in figures["stage_busy_share"]],
           "cpu_ms_per_step": [round(c, 2) for c in figures["cpu_ms_per_step"]],
           "samples_per_second_span": figures["samples_per_second_span"]}  # fmt: skip
    for key in ("staleness_mean", "staleness_max"):
        if key in figures:
            row[key] = figures[key]
    if schedule_class(schedule, staged=True).microbatched:
        m = microbatches(args, k)
        row["bubble_bound"] = m / (m + k - 1)
    busy = [round(b, 2) for b in figures["stage_busy_share"]]
    cpu = max(figures["cpu_ms_per_step"])
    shown = f"efficiency {row['efficiency']:.2f}, cpu <= {cpu:.1f} ms/step, busy {busy}"
    print(f"K={k:2d} {rule:16s} {schedule:16s} {speed:8.1f} samples/s, {shown}", flush=True)
    return row


def ideal(args: argparse.Namespace) -> float:
    """Samples/s of a perfect pipeline: one batch per block's forward + backward wait."""
    return args.batch / ((args.forward_ms + args.backward_ms) / 1000)


def best_schedule(rows: list[dict[str, Any]], rule: str) -> str | None:
    """The rule's most efficient schedule at the largest K it was measured on with all."""
    staged = [r for r in rows if r["rule"] == rule and r["schedule"] != "one process"]
    if not staged:
        return None
    top = max(r["stages"] for r in staged)
    return max((r for r in staged if r["stages"] == top), key=lambda r: r["efficiency"])["schedule"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument(
        "--rules", nargs="+",
        default=["backprop", "ddg", "dgl", "dfa", "loco", "local_parallel", "dni"],
    )  # fmt: skip
    parser.add_argument("--forward-ms", type=float, default=20.0)
    parser.add_argument("--backward-ms", type=float, default=40.0)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--local-steps", type=int, default=8, help="one-process steps (2 warm-up)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--microbatches", type=int, default=4, help="per batch; 0: one per stage (M = K)"
    )
    parser.add_argument(
        "--staleness", type=int, default=None,
        help="engine.staleness of stale_error / stale_overlap (default: each one's own)",
    )  # fmt: skip
    parser.add_argument(
        "--schedules", nargs="+", help="measure only these staged schedules (default: every one)"
    )
    parser.add_argument("--all-schedules-up-to", type=int, default=8)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    record = {"benchmark": "scaling", "args": {k: str(v) for k, v in vars(args).items()},
              "environment": environment(), "rows": rows}  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    for k in sorted(args.stages):
        for rule in args.rules:
            one = measure(case(rule, k, args, "local", None))["samples_per_second"]
            rows.append({"rule": rule, "stages": k, "schedule": "one process",
                         "samples_per_second": one, "efficiency": 1.0 / k})  # fmt: skip
            print(f"K={k:2d} {rule:16s} one process      {one:8.1f} samples/s", flush=True)
            schedules = schedules_for(rule, k, RULE_OPTIONS.get(rule)) if k > 1 else []
            schedules = [s for s in schedules if not args.schedules or s in args.schedules]
            if k > args.all_schedules_up_to:
                best = best_schedule(rows, rule)
                schedules = [s for s in schedules if s == best] if best else schedules
            for schedule in schedules:
                rows.append(staged_row(rule, k, schedule, one, args))
            # written after every rule, so a run cut short keeps what it measured
            args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.json}")
    if args.plot is not None:
        plot(rows, args.plot)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Efficiency against K, one line per (rule, schedule), each with its own colour, line
    style and marker; the targets dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = [plt.get_cmap("tab20")(i) for i in range(20)]
    styles = ["-", "--", "-.", ":"]
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    figure, axes = plt.subplots(figsize=(9, 4.5))
    lines = sorted({(r["rule"], r["schedule"]) for r in rows if r["schedule"] != "one process"})
    for i, (rule, schedule) in enumerate(lines):
        points = sorted((r["stages"], r["efficiency"]) for r in rows
                        if (r["rule"], r["schedule"]) == (rule, schedule))  # fmt: skip
        axes.plot(*zip(*points, strict=True), color=colours[i % len(colours)],
                  linestyle=styles[i % len(styles)], marker=markers[i % len(markers)],
                  label=f"{rule} ({schedule})")  # fmt: skip
    for target in TARGETS:
        axes.axhline(target, color="grey", linestyle=(0, (6, 3)), linewidth=1)
        axes.annotate(f"target {target}", (1.0, target), xycoords=("axes fraction", "data"),
                      ha="right", va="bottom", fontsize=7, color="grey")  # fmt: skip
    ks = sorted({r["stages"] for r in rows})
    axes.set_xscale("log", base=2)
    axes.set_xticks(ks, [str(k) for k in ks])
    axes.set_ylim(0, 1.05)
    axes.set_xlabel("stages K (simulated devices, one block each)")
    axes.set_ylabel("efficiency = samples/s / (K x 1 process)")
    axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
