"""The comparison's figures, checked by their artists: one panel per family, legends outside
the axes, one colour per rule in every figure, staged runs dashed, integer block ticks, titles
naming the suite; and the table's formats and the output folder's lock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest

from beyond_backprop.compare import plots
from beyond_backprop.compare.execute import output_lock, read_progress
from beyond_backprop.compare.report import HEADERS, formatted
from beyond_backprop.errors import ConfigError
from beyond_backprop.tracking.run_dir import RunDir

RULES = [("backprop", "1 process"), ("backprop", "2 stages, gpipe"), ("dgl", "1 process"),
         ("dfa", "1 process")]  # fmt: skip


def fake_run(root: Path, label: str, rule: str, steps_per_epoch: int) -> Path:
    """A run directory with two evaluations over 2 epochs and a summary."""
    run = root / label
    run.mkdir(parents=True)
    records = [
        {"step": s, "epoch": 0, "block": None, "split": "test", "name": "accuracy",
         "value": 0.1 * s, "wall": 0.0}
        for s in (steps_per_epoch, 2 * steps_per_epoch)
    ]  # fmt: skip
    RunDir(run).metrics().write_text("".join(json.dumps(r) + "\n" for r in records))
    RunDir(run).summary.write_text(json.dumps({"epochs": 2, "total_steps": 2 * steps_per_epoch}))
    return run


@pytest.fixture
def table(tmp_path: Path) -> list[dict[str, Any]]:
    rows = []
    for i, (rule, engine) in enumerate(RULES):
        label = rule if engine == "1 process" else f"{rule}-2stage-gpipe"
        rows.append({
            "label": label, "rule": rule, "engine": engine, "accuracy": 0.5 + 0.1 * i,
            "gap_to_backprop": 0.0, "wall_seconds": 3.0, "train_seconds": 1.0 + i,
            "samples_per_second": 100.0, "steady_samples_per_second": 120.0,
            "time_speedup_vs_backprop": 1.0, "throughput_vs_backprop": 1.0,
            "peak_rss_mb": 10.0, "peak_device_memory_mb": None,
            "reused": False, "error": None,
            "run_dir": str(fake_run(tmp_path, label, rule, 5 * (i + 1))),
            "per_block_accuracy": {0: 0.3, 1: 0.4, 2: 0.5},
        })  # fmt: skip
    return rows


def _legend_outside(ax: Any) -> bool:
    fig = ax.figure
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    return bool(legend.x0 >= ax.get_window_extent().x1)


def test_learning_curves_have_a_panel_per_family_in_epochs(table: list[dict[str, Any]]) -> None:
    palette = plots.colours(table)
    fig = plots.learning_curves(table, palette, "suite t, digits, 2 epoch(s)")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [plots.FAMILIES[f] for f in ("gradient", "output_error", "none")]
    assert "suite t, digits" in fig._suptitle.get_text()  # type: ignore[union-attr]
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch" and _legend_outside(ax)
        for line in ax.lines:  # x in epochs, whatever the run's steps per epoch
            assert list(line.get_xdata()) == [1.0, 2.0]
    backprop, staged = fig.axes[0].lines
    assert backprop.get_color() == staged.get_color()  # one colour per rule
    assert (backprop.get_linestyle(), staged.get_linestyle()) == ("-", "--")
    plt.close(fig)


def test_every_figure_gives_a_rule_the_same_colour(table: list[dict[str, Any]]) -> None:
    palette = plots.colours(table)
    assert len(set(palette.values())) == 3
    curves = plots.learning_curves(table, palette, "")
    blocks = plots.per_block_accuracy(table, palette, "")
    scatter = plots.accuracy_vs_time(table, palette, "")
    by_label = {line.get_label(): line.get_color() for ax in curves.axes for line in ax.lines}
    assert by_label == {line.get_label(): line.get_color() for line in blocks.axes[0].lines}
    points = scatter.axes[0].collections
    assert [tuple(p.get_facecolor()[0]) for p in points] == [
        tuple(plt.matplotlib.colors.to_rgba(palette[row["rule"]])) for row in table
    ]
    assert _legend_outside(blocks.axes[0]) and _legend_outside(scatter.axes[0])
    assert "without start-up and evaluation" in scatter.axes[0].get_xlabel()
    blocks.canvas.draw()
    ticks = [t for t in blocks.axes[0].get_xticks() if 0 <= t <= 2]
    assert ticks and all(float(t).is_integer() for t in ticks)
    for fig in (curves, blocks, scatter):
        plt.close(fig)


def test_the_table_names_its_speed_columns_in_every_format(table: list[dict[str, Any]]) -> None:
    markdown = formatted(table, "markdown")
    assert "| time speed-up vs bp | steady vs bp |" in markdown
    assert "time speed-up vs bp = backprop's train s / this run's" in markdown
    assert formatted(table, "csv").splitlines()[0].split(",")[8:11] == [
        "steady_samples_per_second",
        "time_speedup_vs_backprop",
        "throughput_vs_backprop",
    ]
    assert json.loads(formatted(table, "json"))[0]["label"] == "backprop"
    assert len(HEADERS) == len(markdown.splitlines()[2].split("|")) - 2


def test_a_second_compare_on_the_same_output_folder_is_refused(tmp_path: Path) -> None:
    with output_lock(tmp_path), pytest.raises(ConfigError) as info, output_lock(tmp_path):
        pass
    assert "another bbp compare (pid " in str(info.value)
    with output_lock(tmp_path):  # released: free again
        pass


def test_progress_file_is_read_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "run.progress"
    assert read_progress(path) is None
    path.write_text("3 12\n")
    assert read_progress(path) == (3, 12)
    path.write_text("3")
    assert read_progress(path) is None
