"""Every rule has a CIFAR-10 preset (the paper's setup) that validates and trains two steps with
its own architecture, rule and optimiser, and a smoke preset that trains two steps, all on a
fabricated CIFAR-10 tarball."""

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


# What the full presets' run shrinks, and why; nothing else (architecture, rule, optimiser and
# its schedule, augmentation, epochs) is overridden. The batch: 4 images instead of 128 keeps
# the slowest presets (simclr's ResNet-50 on two views, dgl's 128-channel CNN at full
# resolution) to a few seconds each on 2 CPU cores, and BatchNorm still sees several samples.
# train_limit / max_steps: two steps of that batch. Evaluation cannot be turned off (the
# trainer always evaluates at the end), so test_limit and eval_batch_size make it one batch.
SHRINK = [
    "data.batch_size=4",
    "data.train_limit=8",
    "train.max_steps=2",
    "data.test_limit=4",
    "data.eval_batch_size=4",
]


@pytest.mark.parametrize("rule", sorted(RULES))
def test_full_preset_trains_two_steps(rule: str, tarball: Path, tmp_path: Path) -> None:
    path = PRESETS / f"{rule}.yaml"
    places = [f"data.root={tarball}", f"log.root={tmp_path / 'runs'}", "log.progress=false"]
    config = load_config(path, [*places, *SHRINK])
    preset = load_config(path, [])
    assert (config.model, config.rule, config.optim) == (preset.model, preset.rule, preset.optim)
    assert (config.data.augment, config.train.epochs) == (preset.data.augment, preset.train.epochs)
    result = start_run(config)
    assert result.summary["completed"] and result.summary["steps"] == 2
    assert math.isfinite(result.summary["accuracy"])
