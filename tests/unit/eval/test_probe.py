"""Linear probes: online probes never pass a gradient to the features; offline probes are
seeded, leave the global generator alone, and read separable features correctly; the
``bbp eval --probe`` command probes a finished run."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor
from typer.testing import CliRunner

from beyond_backprop.cli.app import app
from beyond_backprop.data import TensorSplit
from beyond_backprop.eval.probe import fit_probes
from beyond_backprop.experiment import build_experiment
from beyond_backprop.models.probes import (
    LinearProbe,
    ProbedLocal,
    encoder_features,
    pooled,
    pooled_size,
)
from beyond_backprop.run import start_run
from tests.helpers import tiny_config


def test_pooled_features_have_the_announced_size() -> None:
    for shape in [(3, 8, 8), (2, 3, 5), (7,)]:
        h = torch.randn(4, *shape)
        assert pooled(h, 4).shape == (4, pooled_size(shape, 4))
    assert torch.equal(pooled(torch.ones(2, 3, 8, 8), 2), torch.ones(2, 12))


def test_probe_loss_never_reaches_the_features() -> None:
    local = ProbedLocal(None, LinearProbe((3, 4, 4), 5, 2))
    h = torch.randn(6, 3, 4, 4, requires_grad=True)
    local.probe_loss(h, torch.randint(0, 5, (6,))).backward()
    assert h.grad is None
    assert local.probe.linear.weight.grad is not None


def separable(n: int, seed: int) -> TensorSplit:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 6, generator=g) * 0.1
    x[torch.arange(n), y] += 2.0
    return TensorSplit(x, y)


def test_offline_probes_are_seeded_and_leave_the_global_generator_alone() -> None:
    train, test = separable(300, 0), separable(100, 1)

    def features(x: Tensor) -> list[Tensor]:
        return [x, x[:, :1]]  # block 0 sees every class, block 1 only class 0's coordinate

    state = torch.get_rng_state()
    first = fit_probes(features, train, test, epochs=20, lr=0.05, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert first == fit_probes(features, train, test, epochs=20, lr=0.05, seed=3)
    assert first[0] == 1.0
    assert first[1] < 0.9


def test_encoder_features_default_to_the_blocks_below_the_classifier() -> None:
    experiment = build_experiment(tiny_config())
    x = experiment.data.test.x[:4]
    feats = encoder_features(experiment.rule, experiment.stack, x)
    assert len(feats) == len(experiment.stack) - 1
    assert torch.equal(feats[-1], experiment.stack.forward_range(x, 0, len(experiment.stack) - 1))


def test_bbp_eval_probe_writes_accuracies_per_block(tmp_path: Path) -> None:
    config = tiny_config(
        tmp_path,
        data={"name": "digits", "batch_size": 64},
        model={"arch": "cnn", "channels": [4, 8], "pool": [True, True], "fc_width": 0},
        rule={"name": "simclr", "mode": "per_block"},
        train={"epochs": 1},
    )
    run_dir = start_run(config).run_dir
    result = CliRunner().invoke(app, ["eval", "--probe", str(run_dir), "--epochs", "2"])
    assert result.exit_code == 0, result.output
    written = json.loads((run_dir / "probe.json").read_text())
    assert sorted(written["accuracy"]) == ["0", "1"]
    assert all(0.0 <= v <= 1.0 for v in written["accuracy"].values())
    assert written["train_examples"] == len(build_experiment(config).data.train)
