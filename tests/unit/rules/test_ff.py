"""Oracles for Forward-Forward: each layer's update is the analytic gradient of the paper's
logistic goodness loss, written by hand (label pixels, wrong labels from the global RNG, unit-RMS
normalisation between layers); prediction is the goodness summed over layers but the first."""

from __future__ import annotations

import pytest
import torch

from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.errors import ConfigError
from beyond_backprop.experiment import Experiment, build_experiment
from beyond_backprop.rules.base import Batch
from tests.helpers import tiny_config

MODEL = {"arch": "mlp", "hidden": [12, 10, 8]}
THETA = 1.5


def _experiment(goodness: str) -> Experiment:
    rule = {"name": "ff", "goodness": goodness, "theta": THETA, "label_value": 2.0}
    return build_experiment(tiny_config(model=MODEL, rule=rule))


def _with_label(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(len(x), -1).clone()
    flat[:, :4] = 0.0
    flat[torch.arange(len(x)), labels] = 2.0
    return flat


def _layer(h: torch.Tensor, linear: torch.nn.Module) -> torch.Tensor:
    return torch.relu(h @ linear.weight.T + linear.bias)


@pytest.mark.parametrize("goodness", ["sum", "mean"])
def test_each_layer_update_is_the_hand_written_goodness_gradient(goodness: str) -> None:
    """dW = sum_i dl_i/dG_i * 2 y_i * 1[a_i > 0] x_i^T / 2B with dl/dG = -s sigma(-s (G - theta))
    (s = +1 positive, -1 negative), layer by layer on the unit-RMS input."""
    exp = _experiment(goodness)
    x, y = exp.data.train.x[:16], exp.data.train.y[:16]
    linears = [block[-2] if k == 0 else block[1][0] for k, block in enumerate(exp.stack.blocks[:3])]
    with torch.no_grad():
        torch.manual_seed(5)
        wrong = (y + torch.randint(1, 4, y.shape)) % 4
        h = torch.cat([_with_label(x, y), _with_label(x, wrong)])
        sign = torch.cat([torch.ones(16), -torch.ones(16)])
        expected = []
        for k, linear in enumerate(linears):
            if k > 0:
                h = h / h.pow(2).mean(1, keepdim=True).sqrt()
            out = _layer(h, linear)
            width = out.shape[1] if goodness == "mean" else 1
            g = out.pow(2).sum(1) / width
            dl_dg = -sign * torch.sigmoid(-sign * (g - THETA))
            delta = (dl_dg[:, None] * 2 * out / width) * (out > 0) / 32
            expected.append((delta.T @ h, delta.sum(0)))
            h = out
    torch.manual_seed(5)
    LocalEngine(exp).train_step(Batch(x, y), epoch=0)
    for linear, (dw, db) in zip(linears, expected, strict=True):
        torch.testing.assert_close(linear.weight.grad, dw, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(linear.bias.grad, db, rtol=1e-5, atol=1e-7)
    classifier = exp.stack.blocks[3][0]
    assert classifier.weight.grad is None  # the classifier block never runs


def test_negatives_carry_a_wrong_label_from_the_global_rng() -> None:
    exp = _experiment("sum")
    y = torch.arange(64) % 4
    batch = Batch(torch.randn(64, 1, 8, 8), y)
    torch.manual_seed(1)
    first = exp.rule.transform_batch(batch, 0)
    torch.manual_seed(1)
    again = exp.rule.transform_batch(batch, 0)
    assert torch.equal(first.x, again.x) and torch.equal(first.y, again.y)
    assert torch.equal(first.y[:64], y) and bool((first.y[64:] != y).all())
    assert set(first.y[64:].tolist()) == {0, 1, 2, 3}
    torch.testing.assert_close(first.x.reshape(128, -1)[:, :4].argmax(1), first.y)


def test_prediction_is_goodness_summed_over_layers_but_the_first() -> None:
    exp = _experiment("sum")
    x = exp.data.test.x[:8]
    linears = [block[-2] if k == 0 else block[1][0] for k, block in enumerate(exp.stack.blocks[:3])]
    scores = exp.rule.predictions(exp.stack, exp.locals, x)
    with torch.no_grad():
        for label in range(4):
            h = _with_label(x, torch.full((8,), label))
            per_layer = []
            for k, linear in enumerate(linears):
                if k > 0:
                    h = h / h.pow(2).mean(1, keepdim=True).sqrt()
                h = _layer(h, linear)
                per_layer.append(h.pow(2).sum(1))
            for k in range(3):
                torch.testing.assert_close(scores[k][:, label], per_layer[k])
            torch.testing.assert_close(scores[None][:, label], per_layer[1] + per_layer[2])


def test_trains_on_synthetic_data() -> None:
    cfg = tiny_config(
        model={"arch": "mlp", "hidden": [32, 32]},
        rule={"name": "ff"},
        optim={"name": "adam", "lr": 0.01},
        train={"epochs": 20},
    )
    assert LocalEngine(build_experiment(cfg)).train()["accuracy"] > 0.7


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="goodness"):
        tiny_config(rule={"name": "ff", "goodness": "max"})
    with pytest.raises(ConfigError, match="label_value"):
        tiny_config(rule={"name": "ff", "label_value": 0.0})
