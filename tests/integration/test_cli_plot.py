"""``bbp plot``: metrics of real (tiny) runs and dataset sample grids as PNG files."""

from __future__ import annotations

from pathlib import Path

import pytest

from beyond_backprop.eval.plots import metric_series
from beyond_backprop.run import start_run
from tests.helpers import run_cli, tiny_config

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("plot")
    train = {"epochs": 2, "log_every": 2, "diagnostics_every": 4}
    return [
        start_run(tiny_config(root, rule={"name": rule}, train=train)).run_dir
        for rule in ("fa", "dfa")
    ]


def test_plot_diagnostic_of_two_runs(
    two_runs: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "angles.png"
    args = [
        "plot",
        *map(str, two_runs),
        "--metric",
        "grad_angle",
        "--split",
        "diag",
        "-o",
        str(out),
    ]
    code, stdout, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0 and f"wrote {out}" in stdout
    assert out.read_bytes().startswith(PNG)
    series = metric_series(two_runs, "grad_angle", "diag")
    fa, dfa = (run.name for run in two_runs)
    # fa has three blocks with a grad_angle, dfa only its two hidden blocks
    assert sorted(series) == sorted(
        [f"{fa} block {k}" for k in range(3)] + [f"{dfa} block {k}" for k in range(2)]
    )
    assert [step for step, _ in series[f"{fa} block 0"]] == [0, 4, 8, 12]


def test_plot_single_run_labels_blocks_and_splits(two_runs: list[Path]) -> None:
    series = metric_series(two_runs[:1], "loss")
    assert set(series) == {"train block 2", "test net"}


def test_unknown_metric_names_the_logged_ones(
    two_runs: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["plot", str(two_runs[0]), "--metric", "grad_angel", "-o", str(tmp_path / "x.png")]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2
    assert "did you mean 'grad_angle'?" in err and "feedback_angle" in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("dataset", ["digits", "synthetic"])
def test_plot_samples_of_a_dataset(
    dataset: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "samples.png"
    code, _, _ = run_cli(
        ["plot", "--samples", dataset, "--count", "12", "-o", str(out)], monkeypatch, capsys
    )
    assert code == 0 and out.read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plot"], "needs run directories"),
        (["plot", "--samples", "digitz"], "did you mean 'digits'?"),
        (["plot", "no/such/run"], "not a directory: no/such/run"),
    ],
)
def test_plot_errors(
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and message in err
