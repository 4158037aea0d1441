"""Oracles for feedback alignment: B = W is backprop exactly (mlp and cnn, through the engine);
with random B the error reaching a hidden layer is the hand-written FA signal; B never moves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from beyond_backprop.autograd import feedback_layers
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.errors import ConfigError
from beyond_backprop.experiment import build_experiment
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules import RULES
from beyond_backprop.rules.base import Batch
from beyond_backprop.run import start_run
from beyond_backprop.tracking.metrics import read_metrics
from tests.helpers import tiny_config

MODELS = {
    "mlp": {"arch": "mlp", "hidden": [16, 16, 8], "batch_norm": True},
    "cnn": {"arch": "cnn", "channels": [4, 8], "pool": [True, False], "fc_width": 12},
}


def _steps(engine: LocalEngine, n: int) -> None:
    data = engine.exp.data.train
    for step in range(n):
        x, y = data.x[step * 16 : (step + 1) * 16], data.y[step * 16 : (step + 1) * 16]
        engine.train_step(Batch(x, y), epoch=0)
        engine.step += 1


@pytest.mark.parametrize("model", list(MODELS))
def test_feedback_tied_to_weights_is_backprop_bitwise(model: str) -> None:
    optim = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}
    fa = build_experiment(tiny_config(model=MODELS[model], rule={"name": "fa"}, optim=optim))
    bp = build_experiment(tiny_config(model=MODELS[model], optim=optim))
    fa_engine, bp_engine = LocalEngine(fa), LocalEngine(bp)
    for _ in range(3):
        # B = W at every step (re-tied before each one): FA's backward is then backprop's
        for layer in feedback_layers(fa.stack):
            layer.feedback.copy_(layer.weight.detach())
        _steps(fa_engine, 1)
        _steps(bp_engine, 1)
    ours = {k: v for k, v in fa.stack.state_dict().items() if not k.endswith("feedback")}
    for key, value in bp.stack.state_dict().items():
        assert torch.equal(ours[key], value), key


def test_hidden_error_goes_through_feedback_matrix() -> None:
    """Two hidden tanh layers, random B: the engine's gradients are the hand-written FA ones,
    dW_1 = ((e B_3 * f'_2) B_2 * f'_1)^T x (the weight-gradient formula, B for the error)."""
    model = {"arch": "mlp", "hidden": [16, 12], "activation": "tanh"}
    exp = build_experiment(tiny_config(model=model, rule={"name": "fa"}))
    x, y = exp.data.train.x[:16], exp.data.train.y[:16]
    l1, l2, l3 = feedback_layers(exp.stack)
    with torch.no_grad():
        flat = x.flatten(1)
        h1 = torch.tanh(flat @ l1.weight.T + l1.bias)
        h2 = torch.tanh(h1 @ l2.weight.T + l2.bias)
        logits = h2 @ l3.weight.T + l3.bias
        e = (torch.softmax(logits, 1) - F.one_hot(y, 4)) / len(y)
        d2 = (e @ l3.feedback) * (1 - h2**2)
        d1 = (d2 @ l2.feedback) * (1 - h1**2)
    LocalEngine(exp).train_step(Batch(x, y), epoch=0)  # leaves each weight's .grad behind
    for layer, expected in [(l1, d1.T @ flat), (l2, d2.T @ h1), (l3, e.T @ h2)]:
        assert layer.weight.grad is not None
        torch.testing.assert_close(layer.weight.grad, expected, rtol=1e-5, atol=1e-7)
    # and the hidden error is not backprop's
    assert not torch.allclose(d2 @ l2.feedback, (e @ l3.weight) * (1 - h2**2) @ l2.weight)


def test_feedback_never_changes_and_is_checkpointed() -> None:
    optim = {"name": "adam", "lr": 0.05, "weight_decay": 0.1}
    exp = build_experiment(tiny_config(model=MODELS["cnn"], rule={"name": "fa"}, optim=optim))
    before = [layer.feedback.clone() for layer in feedback_layers(exp.stack)]
    weights = [layer.weight.detach().clone() for layer in feedback_layers(exp.stack)]
    engine = LocalEngine(exp)
    _steps(engine, 3)
    for layer, b, w in zip(feedback_layers(exp.stack), before, weights, strict=True):
        assert torch.equal(layer.feedback, b)
        assert not torch.equal(layer.weight, w)
    assert not any(
        p is layer.feedback
        for layer in feedback_layers(exp.stack)
        for p in (
            param
            for opt in engine.stepper.optimizers.optimizers
            if opt
            for g in opt.param_groups
            for param in g["params"]
        )
    )
    saved = engine.state_dict()["model"]
    assert sum(key.endswith(".feedback") for key in saved) == len(before)


def test_same_seed_draws_same_feedback() -> None:
    a = build_experiment(tiny_config(rule={"name": "fa"}))
    b = build_experiment(tiny_config(rule={"name": "fa"}))
    for la, lb in zip(feedback_layers(a.stack), feedback_layers(b.stack), strict=True):
        assert torch.equal(la.feedback, lb.feedback)


@pytest.mark.parametrize(("init", "bound"), [("uniform", 0.3), ("fan_in", 0.3 / 16**0.5)])
def test_feedback_init_ranges(init: str, bound: float) -> None:
    rule = RULES.get("fa")(RULES.get("fa").Config(init=init, scale=0.3))
    b = rule.draw_feedback(torch.zeros(2000, 16))
    assert b.abs().max() <= bound and b.abs().max() > 0.95 * bound


def test_prepare_fails_when_nothing_converts() -> None:
    stack = BlockStack([nn.Flatten(), nn.ReLU()], (1, 2, 2))
    with pytest.raises(ValueError, match=r"no nn\.Linear or nn\.Conv2d"):
        RULES.get("fa")(RULES.get("fa").Config()).prepare(stack)


def test_bad_scale_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="scale"):
        tiny_config(rule={"name": "fa", "scale": 0.0})


def test_diagnostics_zero_when_tied_and_leave_no_trace() -> None:
    model = {"arch": "mlp", "hidden": [16, 16], "batch_norm": True, "dropout": 0.2}
    exp = build_experiment(tiny_config(model=model, rule={"name": "fa"}))
    batch = Batch(exp.data.train.x[:16], exp.data.train.y[:16])
    untied = exp.rule.diagnostics(exp.stack, exp.locals, batch, 0)
    assert untied[(0, "grad_angle")] > 20 and untied[(1, "feedback_angle")] > 60
    for layer in feedback_layers(exp.stack):
        layer.feedback.copy_(layer.weight.detach())
    buffers = {k: v.clone() for k, v in exp.stack.state_dict().items()}
    rng = torch.get_rng_state()
    figures = exp.rule.diagnostics(exp.stack, exp.locals, batch, 0)
    assert set(figures) == {
        *((k, "grad_angle") for k in range(3)),
        *((k, "feedback_angle") for k in (1, 2)),  # block 0's only B is never used
        (0, "signal_angle"),
        (1, "signal_angle"),
    }
    assert all(value < 1e-3 for value in figures.values())
    assert all(p.grad is None for p in exp.stack.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    for key, value in exp.stack.state_dict().items():
        assert torch.equal(value, buffers[key]), key


def test_run_learns_and_logs_diagnostics(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, rule={"name": "fa"}, train={"epochs": 6, "diagnostics_every": 8})
    result = start_run(config)
    assert result.summary["accuracy"] > 0.85
    diag = [r for r in read_metrics(result.run_dir / "metrics.jsonl") if r["split"] == "diag"]
    assert {r["step"] for r in diag} == set(range(0, 48, 8))
    assert {r["name"] for r in diag} == {"grad_angle", "signal_angle", "feedback_angle"}
