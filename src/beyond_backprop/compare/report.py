"""The comparison's rows: accuracy, gap to backprop, times, throughput, speed-ups and memory
per variant; written as ``compare.csv``, ``compare.json`` and ``compare.md``.

Two kinds of ratio, never mixed: ``time_speedup_vs_backprop`` is backprop's training time over
this run's (how much sooner the same training ends), the other ratios compare steady rates
(training samples/s between evaluations, past each warm-up; ``engines.steady``). A staged row
has two: against the same rule in one process on the same cores (its one-process row, whose
threads are the staged run's total) and on one device (the entry's throughput probe: one
process with one stage's threads, half of its steps run just before the staged run and half
just after, pooled). The sentences under the table (``compare.speedups``) say
what each staged row reaches and why.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from beyond_backprop.compare.execute import Outcome
from beyond_backprop.compare.speedups import SCALING_PLOT, copy_scaling_plot, staged_sentences
from beyond_backprop.compare.suite import PROBE_STEPS, Variant
from beyond_backprop.tracking.atomic import atomic_write_text

COLUMNS = [
    "label", "rule", "engine", "accuracy", "gap_to_backprop", "wall_seconds",
    "train_seconds", "samples_per_second", "steady_samples_per_second",
    "time_speedup_vs_backprop", "throughput_vs_backprop", "speedup_same_cores",
    "speedup_one_device", "one_device_samples_per_second", "threads", "peak_rss_mb",
    "peak_device_memory_mb", "reused", "error", "run_dir",
]  # fmt: skip
HEADERS = {
    "label": "run", "engine": "engine", "accuracy": "test acc", "gap_to_backprop": "gap (points)",
    "wall_seconds": "wall s", "train_seconds": "train s",
    "steady_samples_per_second": "steady samples/s",
    "time_speedup_vs_backprop": "time speed-up vs bp", "throughput_vs_backprop": "steady vs bp",
    "speedup_same_cores": "staged vs 1 process, same cores",
    "speedup_one_device": "staged vs 1 process, 1 device",
    "peak_rss_mb": "peak MiB", "peak_device_memory_mb": "peak GPU MiB",
}  # fmt: skip
"""The header of each shown column (the terminal table and ``compare.md``)."""
LEGEND = (
    "wall s: the run as bbp compare timed it (one-process runs train inside it: data, building, "
    "training, evaluation; staged runs are bbp launch children: their start-up too). train s: "
    "the training steps only (staged: the slowest stage). steady samples/s: the training steps "
    "between evaluations and checkpoints, past a few warm-up steps after each (staged: the "
    "slowest stage's, the pipeline's rate). time speed-up vs bp = backprop's train s / this "
    "run's; steady vs bp = this run's steady samples/s / backprop's (one process). Staged rows: "
    "steady samples/s against the same rule in one process on the same cores (its one-process "
    "row, whose threads are the stages' total) and on one device (a throughput probe: the "
    f"one-process run with one stage's threads for {PROBE_STEPS} steps, half just before the "
    "staged run and half just after, pooled, no evaluation counted). "
    "peak MiB: host memory of the run (one-process runs: this process, peak reset before each "
    "run); peak GPU MiB: memory allocated on the GPU (staged: the largest stage's; empty on the "
    "CPU)."
)
"""What the time and speed columns mean, printed under the table."""


def rows(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """One row per variant (probes are not rows: their rates are the staged rows' baseline);
    ratios against 1-process backprop and, for staged rows, their own rule in one process."""
    base = _find(outcomes, lambda o: o.variant.rule == "backprop" and o.variant.stages == 1)
    table = []
    for o in outcomes:
        s, v = o.summary, o.variant
        if v.probe:
            continue
        steady, seconds = s.get("steady_samples_per_second"), s.get("train_seconds")
        engine = "1 process" if v.stages == 1 else f"{v.stages} stages, {v.schedule}"
        one, probes = _baselines(outcomes, v)
        one_device = _pooled_rate(probes)
        row: dict[str, Any] = {
            "label": v.label, "entry": v.entry, "rule": v.rule, "engine": engine,
            "stages": v.stages,
            "schedule": v.schedule, "threads": v.config.engine.threads,
            "microbatches": v.config.engine.microbatches, "accuracy": s.get("accuracy"),
            "gap_to_backprop": _diff(s.get("accuracy"), base.get("accuracy")),
            "wall_seconds": o.wall_seconds, "train_seconds": seconds,
            "samples_per_second": s.get("samples_per_second"),
            "steady_samples_per_second": steady,
            "time_speedup_vs_backprop": _ratio(base.get("train_seconds"), seconds),
            "throughput_vs_backprop": _ratio(steady, base.get("steady_samples_per_second")),
            "speedup_same_cores": _ratio(steady, one.get("steady_samples_per_second")),
            "speedup_one_device": _ratio(steady, one_device),
            "one_device_samples_per_second": one_device,
            "one_device_halves": [p.get("steady_samples_per_second") for p in probes],
            "stage_timings": s.get("stage_timings"),
            "stage_blocks": s.get("stages"), "block_costs_seconds": s.get("block_costs_seconds"),
            "peak_rss_mb": s.get("peak_rss_mb"),
            "peak_device_memory_mb": s.get("peak_device_memory_mb"),
            "reused": o.reused, "error": o.error,
            "run_dir": str(o.run_dir) if o.run_dir else None,
        }  # fmt: skip
        row["per_block_accuracy"] = {
            int(key.split("/")[0]): value
            for key, value in (s.get("eval") or {}).items()
            if key.endswith("/accuracy")
        }
        table.append(row)
    return table


def write_reports(table: list[dict[str, Any]], out: Path) -> list[Path]:
    """``compare.csv`` (the columns), ``compare.json`` (everything) and ``compare.md`` (the
    table, its legend, the staged rows' sentences and the scaling plot, copied beside it),
    written atomically."""
    paths = [out / f"compare.{kind}" for kind in ("csv", "json", "md")]
    plot = copy_scaling_plot(out)
    for path in paths:
        text = formatted(table, path.suffix[1:].replace("md", "markdown"))
        if path.suffix == ".md" and plot is not None:
            text += f"\n![{SCALING_PLOT.caption}]({plot.name})\n"
        atomic_write_text(path, text)
    return [*paths, plot] if plot is not None else paths


def formatted(table: list[dict[str, Any]], kind: str) -> str:
    """The table as ``csv`` (the columns), ``json`` (every field) or ``markdown`` (the shown
    columns, formatted as in the terminal)."""
    if kind == "json":
        return json.dumps(table, indent=2, sort_keys=True) + "\n"
    if kind == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table)
        return buffer.getvalue()
    lines = [
        "| " + " | ".join(HEADERS.values()) + " |",
        "|" + "|".join("---" if k in ("label", "engine") else "---:" for k in HEADERS) + "|",
    ]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in table]
    said = [f"- {line}" for line in staged_sentences(table)]  # a list: one line each
    return "\n".join([*lines, "", LEGEND, *(["", *said] if said else [])]) + "\n"


def cells(row: dict[str, Any]) -> list[str]:
    """A row's shown values as text, one per ``HEADERS`` column (a failure: its reason)."""
    if row["error"]:
        return [row["label"], row["engine"], f"failed: {row['error']}"] + [""] * (len(HEADERS) - 3)
    gap = row["gap_to_backprop"]
    return [
        row["label"], row["engine"], _pct(row["accuracy"]),
        "" if gap is None else f"{100 * gap:+.2f}",
        _num(row["wall_seconds"], 0), _num(row["train_seconds"], 1),
        _num(row["steady_samples_per_second"], 0),
        _num(row["time_speedup_vs_backprop"], 2, "x"), _num(row["throughput_vs_backprop"], 2, "x"),
        _num(row.get("speedup_same_cores"), 2, "x"), _num(row.get("speedup_one_device"), 2, "x"),
        _num(row["peak_rss_mb"], 0), _num(row["peak_device_memory_mb"], 0),
    ]  # fmt: skip


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None, digits: int, suffix: str = "") -> str:
    return "" if value is None else f"{value:.{digits}f}{suffix}"


def _baselines(
    outcomes: list[Outcome], staged: Variant
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A staged row's one-process row (only when it used the stages' total threads: the
    same cores) and its probe halves' summaries; empty where there are none."""
    if staged.stages == 1:
        return {}, []
    total = (staged.config.engine.threads or 0) * staged.stages
    same = [o.variant.entry == staged.entry and not o.error for o in outcomes]
    one = next((o.summary for o, s in zip(outcomes, same, strict=True)
                if s and o.variant.stages == 1 and not o.variant.probe
                and o.variant.config.engine.threads == total), {})  # fmt: skip
    probes = [o.summary for o, s in zip(outcomes, same, strict=True) if s and o.variant.probe]
    return one, probes


def _pooled_rate(summaries: list[dict[str, Any]]) -> float | None:
    """The steady rate of a probe's halves together: their counted samples over their counted
    time (each half's steady steps at its own time per step)."""
    halves = [(s.get("steady_steps"), s.get("steady_samples_per_second")) for s in summaries]
    counted = [(int(n), float(r)) for n, r in halves if n and r]
    if not counted:
        return None
    return sum(n for n, _ in counted) / sum(n / r for n, r in counted)


def _find(outcomes: list[Outcome], test: Any) -> dict[str, Any]:
    return next((o.summary for o in outcomes if test(o) and not o.error), {})


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _diff(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None
