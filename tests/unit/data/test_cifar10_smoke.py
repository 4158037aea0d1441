"""The CIFAR-10 smoke preset trains on the fabricated tarball (64 train / 32 test images)."""

from __future__ import annotations

import math
from pathlib import Path

from beyond_backprop.config import load_config
from beyond_backprop.data.augment import AugmentConfig
from beyond_backprop.run import start_run
from tests.fabricate import write_cifar10_tarball

PRESET = Path(__file__).resolve().parents[3] / "configs" / "cifar10" / "smoke" / "backprop.yaml"


def test_cifar10_smoke_preset_trains_two_steps(tmp_path: Path) -> None:
    tarball, _ = write_cifar10_tarball(tmp_path / "data")
    config = load_config(
        PRESET, [f"data.root={tarball}", f"log.root={tmp_path / 'runs'}", "log.progress=false"]
    )
    assert config.data.augment == AugmentConfig(crop_padding=4, flip=True)
    assert config.model.arch == "cnn"
    result = start_run(config)
    assert result.summary["completed"] and result.summary["steps"] == 2
    assert math.isfinite(result.summary["accuracy"])
