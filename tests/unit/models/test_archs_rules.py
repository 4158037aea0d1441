"""Every registered rule trains on every image architecture (debug size, CIFAR-shaped data)."""

from __future__ import annotations

import math

import pytest
import torch

from beyond_backprop.config import build_experiment_config
from beyond_backprop.data import DatasetSplits
from beyond_backprop.data.base import TensorSplit
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.experiment import build_experiment
from beyond_backprop.models import ARCHITECTURES
from beyond_backprop.rules import RULES
from beyond_backprop.rules.base import Batch

ARCHS = ("vgg", "resnet", "cifar_cnn")
NEEDS_OWN_DATA = {"provable": "needs model.arch=hierarchical on its hierarchical digits"}
"""Rules left out, and why: they cannot run on these architectures by design."""


def _cifar_shaped(n: int = 32) -> DatasetSplits:
    generator = torch.Generator().manual_seed(0)
    split = TensorSplit(
        torch.randn(n, 3, 32, 32, generator=generator),
        torch.randint(0, 10, (n,), generator=generator),
    )
    return DatasetSplits("cifar10-shaped", split, split, 10)


def _debug_options(arch: str) -> dict[str, object]:
    """The architecture's debug size as YAML options (tuples as lists)."""
    options = vars(ARCHITECTURES.get(arch).debug())
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("rule", [r for r in RULES.names() if r not in NEEDS_OWN_DATA])
def test_every_rule_trains_two_steps_on_every_architecture(rule: str, arch: str) -> None:
    torch.set_num_threads(1)
    config = build_experiment_config(
        {
            "data": {"name": "synthetic", "batch_size": 16},
            "model": {"arch": arch, **_debug_options(arch)},
            "rule": {"name": rule},
            "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
            "train": {"epochs": 1},
            "engine": {"threads": 1},
        }
    )
    data = _cifar_shaped()
    engine = LocalEngine(build_experiment(config, data=data))
    for i in range(2):
        batch = Batch(data.train.x[16 * i : 16 * (i + 1)], data.train.y[16 * i : 16 * (i + 1)])
        terms = engine.train_step(batch, epoch=0)
        engine.step += 1
        assert terms and all(math.isfinite(v) for v in terms.values()), terms


def test_the_left_out_rules_exist() -> None:
    assert set(NEEDS_OWN_DATA) <= set(RULES.names())
