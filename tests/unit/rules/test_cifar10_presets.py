"""Every rule has a CIFAR-10 preset (the paper's setup) that validates, and a smoke preset that
trains two steps on a fabricated CIFAR-10 tarball."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from beyond_backprop.config import load_config
from beyond_backprop.rules.registry import RULES
from beyond_backprop.run import start_run
from tests.fabricate import write_cifar10_tarball

PRESETS = Path(__file__).resolve().parents[3] / "configs" / "cifar10"


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = write_cifar10_tarball(tmp_path_factory.mktemp("cifar"))
    return path


@pytest.mark.parametrize("rule", sorted(RULES))
def test_full_preset_validates_and_cites_its_source(rule: str) -> None:
    path = PRESETS / f"{rule}.yaml"
    config = load_config(path, [])
    assert config.rule.name == rule and config.data.name == "cifar10"
    assert "Follows" in path.read_text()  # the table or section it follows


@pytest.mark.parametrize("rule", sorted(RULES))
def test_smoke_preset_trains_two_steps(rule: str, tarball: Path, tmp_path: Path) -> None:
    overrides = [f"data.root={tarball}", f"log.root={tmp_path / 'runs'}", "log.progress=false"]
    config = load_config(PRESETS / "smoke" / f"{rule}.yaml", overrides)
    assert config.rule.name == rule
    result = start_run(config)
    assert result.summary["completed"] and result.summary["steps"] == 2
    assert math.isfinite(result.summary["accuracy"])
