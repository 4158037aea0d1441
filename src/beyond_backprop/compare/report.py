"""The comparison's rows: accuracy, gap to backprop, speed, speed-ups and memory per variant;
written as ``compare.csv`` and ``compare.json``."""

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
    "samples_per_second", "speedup_vs_backprop", "speedup_vs_gpipe", "peak_rss_mb", "reused",
    "error", "run_dir",
]  # fmt: skip


def rows(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """One row per variant; ratios against 1-process backprop and staged gpipe backprop."""
    base = _find(outcomes, lambda o: o.variant.rule == "backprop" and o.variant.stages == 1)
    gpipe = _find(
        outcomes, lambda o: o.variant.rule == "backprop" and o.variant.schedule == "gpipe"
    )
    table = []
    for o in outcomes:
        s, v = o.summary, o.variant
        speed = s.get("samples_per_second")
        engine = "1 process" if v.stages == 1 else f"{v.stages} stages, {v.schedule}"
        row: dict[str, Any] = {
            "label": v.label, "rule": v.rule, "engine": engine, "accuracy": s.get("accuracy"),
            "gap_to_backprop": _diff(s.get("accuracy"), base.get("accuracy")),
            "wall_seconds": o.wall_seconds, "train_seconds": s.get("train_seconds"),
            "samples_per_second": speed,
            "speedup_vs_backprop": _ratio(speed, base.get("samples_per_second")),
            "speedup_vs_gpipe": _ratio(speed, gpipe.get("samples_per_second")),
            "peak_rss_mb": s.get("peak_rss_mb"), "reused": o.reused, "error": o.error,
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
    """``compare.csv`` (the columns) and ``compare.json`` (everything), written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(table)
    csv_path, json_path = out / "compare.csv", out / "compare.json"
    atomic_write_text(csv_path, buffer.getvalue())
    atomic_write_text(json_path, json.dumps(table, indent=2, sort_keys=True) + "\n")
    return [csv_path, json_path]


def _find(outcomes: list[Outcome], test: Any) -> dict[str, Any]:
    return next((o.summary for o in outcomes if test(o) and not o.error), {})


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _diff(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None
