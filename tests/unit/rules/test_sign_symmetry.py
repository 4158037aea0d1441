"""Oracles for sign-symmetric feedback: with magnitudes |W| it is back-propagation bitwise (mlp
and cnn, through the engine); the backward matrix follows the current sign of W; each variant's
matrix is the hand-written sign(W) * M."""

from __future__ import annotations

import pytest
import torch

from beyond_backprop.autograd import feedback_layers
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.errors import ConfigError
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules.base import Batch
from tests.helpers import tiny_config

MODELS = {
    "mlp": {"arch": "mlp", "hidden": [16, 16, 8], "batch_norm": True},
    "cnn": {"arch": "cnn", "channels": [4, 8], "pool": [True, False], "fc_width": 12},
}
OPTIM = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}


def _steps(engine: LocalEngine, n: int) -> None:
    data = engine.exp.data.train
    for step in range(n):
        x, y = data.x[step * 16 : (step + 1) * 16], data.y[step * 16 : (step + 1) * 16]
        engine.train_step(Batch(x, y), epoch=0)
        engine.step += 1


@pytest.mark.parametrize("variant", ["usf", "frsf"])
@pytest.mark.parametrize("model", list(MODELS))
def test_magnitudes_of_weight_give_backprop_bitwise(
    model: str, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sign(W) * |W| = W: with that magnitude (a test hook) every update is backprop's, at
    every step, so the backward matrix is recomputed from the weight as it moves."""
    rule = {"name": "sign_symmetry", "variant": variant}
    ss = build_experiment(tiny_config(model=MODELS[model], rule=rule, optim=OPTIM))
    bp = build_experiment(tiny_config(model=MODELS[model], optim=OPTIM))
    monkeypatch.setattr(ss.rule, "magnitude", lambda weight, stored: weight.abs())
    ss_engine, bp_engine = LocalEngine(ss), LocalEngine(bp)
    _steps(ss_engine, 3)
    _steps(bp_engine, 3)
    ours = {k: v for k, v in ss.stack.state_dict().items() if not k.endswith("feedback")}
    for key, value in bp.stack.state_dict().items():
        assert torch.equal(ours[key], value), key


def _input_grad(layer: torch.nn.Module, x: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    layer(x).backward(dy)
    assert x.grad is not None
    return x.grad


def test_backward_follows_the_current_sign_of_w() -> None:
    """Flip the signs of half of W's rows: the input gradient is dy (sign(W_new) M), not the
    old matrix (FA's B would stay as it was)."""
    exp = build_experiment(tiny_config(rule={"name": "sign_symmetry"}))
    layer = feedback_layers(exp.stack)[1]  # Linear(16, 16)
    x, dy = torch.randn(5, 16), torch.randn(5, 16)
    m = 1 / 16**0.5
    before = _input_grad(layer, x, dy)
    torch.testing.assert_close(before, dy @ (layer.weight.detach().sign() * m))
    with torch.no_grad():
        layer.weight[:8].neg_()
    after = _input_grad(layer, x, dy)
    torch.testing.assert_close(after, dy @ (layer.weight.detach().sign() * m))
    assert not torch.allclose(before, after)


def test_variants_hand_written_matrices() -> None:
    """uSF: sign(W)/sqrt(fan_in); frSF: sign(W) times a fixed nonnegative buffer; brSF: a fresh
    |R| per training pass, drawn from torch's global generator (reseeding redraws it)."""
    x, dy = torch.randn(5, 16), torch.randn(5, 16)
    for variant in ("usf", "frsf", "brsf"):
        exp = build_experiment(tiny_config(rule={"name": "sign_symmetry", "variant": variant}))
        layer = feedback_layers(exp.stack)[1]
        sign = layer.weight.detach().sign()
        if variant == "usf":
            torch.testing.assert_close(_input_grad(layer, x, dy), dy @ (sign / 4))
        elif variant == "frsf":
            stored = layer.feedback.clone()
            assert stored.shape == layer.weight.shape and (stored >= 0).all()
            assert stored.max() <= 1 / 4
            torch.testing.assert_close(_input_grad(layer, x, dy), dy @ (sign * stored))
            torch.testing.assert_close(_input_grad(layer, x, dy), dy @ (sign * stored))
        else:
            torch.manual_seed(3)
            first = _input_grad(layer, x, dy)
            second = _input_grad(layer, x, dy)
            torch.manual_seed(3)
            magnitude = torch.empty(16, 16).uniform_(-1 / 4, 1 / 4).abs()
            torch.testing.assert_close(first, dy @ (sign * magnitude))
            assert not torch.allclose(first, second)


def test_trains_on_synthetic_data() -> None:
    exp = build_experiment(tiny_config(rule={"name": "sign_symmetry"}, train={"epochs": 3}))
    assert LocalEngine(exp).train()["accuracy"] > 0.9


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="scale"):
        tiny_config(rule={"name": "sign_symmetry", "scale": -1.0})
    with pytest.raises(ConfigError, match="variant"):
        tiny_config(rule={"name": "sign_symmetry", "variant": "bsf"})
