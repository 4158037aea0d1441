"""Bad input, tried as a new user would: one clear line on stderr, exit 2, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from beyond_backprop.data.cache import cache_dir
from beyond_backprop.data.mnist import MNIST_SHA256
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke" / "backprop.yaml")


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def train_args(runs: Path, *overrides: str) -> list[str]:
    sets = [f"log.root={runs}", "log.progress=false", *overrides]
    return ["train", "--config", SMOKE, *(a for s in sets for a in ("--set", s))]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("rule.name=dgll", "error: rule.name: unknown rule 'dgll'"),
        ("optim.lrr=0.1", "error: optim.lrr: unknown key (did you mean 'lr'?)"),
        ("optim.lr=-0.1", "error: optim.lr: -0.1 is invalid: must be > 0"),
        ("data.name=cifar10", "error: CIFAR-10 cannot be downloaded here"),
        ("data.name=fashion_mnist", "apt-get install -y dataset-fashion-mnist"),
    ],
    ids=["unknown-rule", "typo-key", "negative-lr", "cifar-missing", "fashion-missing"],
)
def test_bad_input_is_one_line_and_exit_2(
    override: str,
    message: str,
    runs: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if override == "data.name=fashion_mnist":
        override = "data.root=/nonexistent/fashion"
        extra = ["data.name=fashion_mnist"]
    else:
        extra = []
    code, _, err = run_cli(train_args(runs, override, *extra), monkeypatch, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert "Traceback" not in err
    assert not runs.exists(), "nothing may be written for a run that never started"


def test_missing_config_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["train", "--config", "nope.yaml"], monkeypatch, capsys)
    assert (
        code == 2
        and err.strip() == "error: nope.yaml: cannot read config file (No such file or directory)"
    )


def test_corrupted_mnist_cache(
    runs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cached = cache_dir() / "mnist" / f"{MNIST_SHA256}.pkl.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not the real file")
    code, _, err = run_cli(train_args(runs, "data.name=mnist"), monkeypatch, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(cached) in err and "delete it" in err
    assert not runs.exists()


def test_unreadable_checkpoint(
    runs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli([*train_args(runs), "--stop-after", "5"], monkeypatch, capsys)
    assert code == 0 and "resume with: bbp train --resume" in out
    (run_dir,) = runs.glob("*/*")
    state = run_dir / "checkpoints" / "step-5" / "state.pt"
    state.write_bytes(b"garbage")
    code, _, err = run_cli(["train", "--resume", str(run_dir)], monkeypatch, capsys)
    assert code == 2 and err.strip().startswith(f"error: cannot read checkpoint {state}")


def test_resume_of_a_missing_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["train", "--resume", str(tmp_path / "gone")], monkeypatch, capsys)
    assert code == 2 and err.strip() == f"error: run directory {tmp_path / 'gone'} does not exist"


def test_list_unknown(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["list", "rule"], monkeypatch, capsys)
    assert code == 2 and "did you mean 'rules'?" in err


def test_train_prints_one_summary_line(
    runs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(train_args(runs), monkeypatch, capsys)
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith("test accuracy ") and str(runs) in last
    (run_dir,) = runs.glob("*/*")
    assert {p.name for p in run_dir.iterdir()} >= {
        "config.yaml",
        "meta.json",
        "metrics.jsonl",
        "summary.json",
        "checkpoints",
    }
