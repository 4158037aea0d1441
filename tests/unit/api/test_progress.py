"""``bbp compare``'s progress on a terminal and off it; a compared run's progress file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from beyond_backprop.cli.progress import CompareProgress, TrainingProgress
from beyond_backprop.compare.execute import PROGRESS_ENV, read_progress


def test_on_a_terminal_the_bars_name_run_k_of_n(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with CompareProgress(console, 2) as progress:
        assert progress.live
        poll = progress.start(0, "backprop")
        poll(None)
        poll((3, 10))
        progress.done("  backprop: acc 50.00% (3 s)")
        progress.start(1, "dgl")((10, 10))
    shown = buffer.getvalue()
    assert "run 1 of 2: backprop" in shown and "run 2 of 2: dgl" in shown
    assert "backprop: acc 50.00%" in shown and "left" in shown


def test_off_a_terminal_one_line_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    with CompareProgress(Console(file=buffer), 3) as progress:
        assert not progress.live
        progress.start(1, "fa")((1, 2))
    assert buffer.getvalue() == "run 2 of 3: fa\n"


def test_a_compared_run_reports_its_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.progress"
    monkeypatch.setenv(PROGRESS_ENV, str(path))
    with TrainingProgress(Console(file=io.StringIO()), enabled=False) as progress:
        progress.on_step(1, 8, 0)
        assert read_progress(path) == (1, 8)
        progress.on_step(2, 8, 0)  # within 0.2 s: not written
        progress.on_step(8, 8, 0)  # the last step always is
    assert read_progress(path) == (8, 8)
