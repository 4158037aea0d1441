"""The comparison's rows: accuracy, gap to backprop, times, throughput, speed-ups and memory
per variant; written as ``compare.csv``, ``compare.json`` and ``compare.md``.

Two kinds of ratio, never mixed: ``time_speedup_vs_*`` is the baseline's training time over
this run's (how much sooner the same training ends), ``throughput_vs_*`` this run's samples/s
over the baseline's. They differ when runs see different numbers of samples (a rule that
trains block by block runs more epochs).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from beyond_backprop.compare.execute import Outcome
from beyond_backprop.tracking.atomic import atomic_write_text

COLUMNS = [
    "label", "rule", "engine", "accuracy", "gap_to_backprop", "wall_seconds", "train_seconds",
    "samples_per_second", "time_speedup_vs_backprop", "throughput_vs_backprop",
    "time_speedup_vs_gpipe", "throughput_vs_gpipe", "peak_rss_mb", "peak_device_memory_mb",
    "reused", "error",
    "run_dir",
]  # fmt: skip
HEADERS = {
    "label": "run", "engine": "engine", "accuracy": "test acc", "gap_to_backprop": "gap (points)",
    "wall_seconds": "process s", "train_seconds": "train s",
    "samples_per_second": "train samples/s", "time_speedup_vs_backprop": "time speed-up vs bp",
    "throughput_vs_backprop": "throughput vs bp", "time_speedup_vs_gpipe": "time speed-up vs gpipe",
    "throughput_vs_gpipe": "throughput vs gpipe", "peak_rss_mb": "peak MiB",
    "peak_device_memory_mb": "peak GPU MiB",
}  # fmt: skip
"""The header of each shown column (the terminal table and ``compare.md``)."""
LEGEND = (
    "process s: the run's whole process (start-up, data, training, evaluation); train s: the "
    "training loop only (staged: the slowest stage). time speed-up = the baseline's train s / "
    "this run's; throughput = this run's train samples/s / the baseline's. bp: backprop in one "
    "process; gpipe: backprop staged with gpipe. peak MiB: host memory; peak GPU MiB: memory "
    "allocated on the GPU (staged: the largest stage's; empty on the CPU)."
)
"""What the time and speed columns mean, printed under the table."""


def rows(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """One row per variant; ratios against 1-process backprop and staged gpipe backprop."""
    base = _find(outcomes, lambda o: o.variant.rule == "backprop" and o.variant.stages == 1)
    gpipe = _find(
        outcomes, lambda o: o.variant.rule == "backprop" and o.variant.schedule == "gpipe"
    )
    table = []
    for o in outcomes:
        s, v = o.summary, o.variant
        speed, seconds = s.get("samples_per_second"), s.get("train_seconds")
        engine = "1 process" if v.stages == 1 else f"{v.stages} stages, {v.schedule}"
        row: dict[str, Any] = {
            "label": v.label, "rule": v.rule, "engine": engine, "accuracy": s.get("accuracy"),
            "gap_to_backprop": _diff(s.get("accuracy"), base.get("accuracy")),
            "wall_seconds": o.wall_seconds, "train_seconds": seconds,
            "samples_per_second": speed,
            "time_speedup_vs_backprop": _ratio(base.get("train_seconds"), seconds),
            "throughput_vs_backprop": _ratio(speed, base.get("samples_per_second")),
            "time_speedup_vs_gpipe": _ratio(gpipe.get("train_seconds"), seconds),
            "throughput_vs_gpipe": _ratio(speed, gpipe.get("samples_per_second")),
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
    table), written atomically."""
    paths = [out / f"compare.{kind}" for kind in ("csv", "json", "md")]
    for path in paths:
        atomic_write_text(path, formatted(table, path.suffix[1:].replace("md", "markdown")))
    return paths


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
    return "\n".join([*lines, "", LEGEND]) + "\n"


def cells(row: dict[str, Any]) -> list[str]:
    """A row's shown values as text, one per ``HEADERS`` column (a failure: its reason)."""
    if row["error"]:
        return [row["label"], row["engine"], f"failed: {row['error']}"] + [""] * (len(HEADERS) - 3)
    gap = row["gap_to_backprop"]
    return [
        row["label"], row["engine"], _pct(row["accuracy"]),
        "" if gap is None else f"{100 * gap:+.2f}",
        _num(row["wall_seconds"], 0), _num(row["train_seconds"], 1),
        _num(row["samples_per_second"], 0),
        _num(row["time_speedup_vs_backprop"], 2, "x"), _num(row["throughput_vs_backprop"], 2, "x"),
        _num(row["time_speedup_vs_gpipe"], 2, "x"), _num(row["throughput_vs_gpipe"], 2, "x"),
        _num(row["peak_rss_mb"], 0), _num(row["peak_device_memory_mb"], 0),
    ]  # fmt: skip


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None, digits: int, suffix: str = "") -> str:
    return "" if value is None else f"{value:.{digits}f}{suffix}"


def _find(outcomes: list[Outcome], test: Any) -> dict[str, Any]:
    return next((o.summary for o in outcomes if test(o) and not o.error), {})


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _diff(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None
