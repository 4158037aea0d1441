"""Oracles for direct feedback alignment: one hidden layer with B = W_out^T is backprop; the
shared projection gives the per-block form's updates with one matmul; the error is (B_k e)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.experiment import Experiment, build_experiment
from beyond_backprop.rules.base import Batch
from beyond_backprop.rules.dfa import DirectFeedback
from beyond_backprop.run import start_run
from beyond_backprop.tracking.metrics import read_metrics
from tests.helpers import tiny_config

DEEP = {"arch": "mlp", "hidden": [16, 12, 8], "activation": "tanh"}
CNN = {"arch": "cnn", "channels": [4, 8], "pool": [True, False], "fc_width": 0}


def _dfa(model: dict[str, object], projection: str = "shared", **optim: object) -> Experiment:
    sgd = {"name": "sgd", "lr": 0.1, "momentum": 0.9, **optim}
    return build_experiment(
        tiny_config(model=model, rule={"name": "dfa", "projection": projection}, optim=sgd)
    )


def _steps(engine: LocalEngine, n: int) -> None:
    data = engine.exp.data.train
    for step in range(n):
        x, y = data.x[step * 16 : (step + 1) * 16], data.y[step * 16 : (step + 1) * 16]
        engine.train_step(Batch(x, y), epoch=0)
        engine.step += 1


def _feedbacks(exp: Experiment) -> list[DirectFeedback]:
    return [m for m in exp.locals if isinstance(m, DirectFeedback)]


def test_one_hidden_layer_with_transposed_output_weights_is_backprop() -> None:
    model = {"arch": "mlp", "hidden": [16], "activation": "tanh"}
    dfa = _dfa(model)
    bp = build_experiment(
        tiny_config(model=model, optim={"name": "sgd", "lr": 0.1, "momentum": 0.9})
    )
    (feedback,) = _feedbacks(dfa)
    out_layer = dfa.stack.blocks[1][0]
    feedback.feedback.copy_(out_layer.weight.detach())  # B = W_out^T (stored as e -> h map)
    _steps(LocalEngine(dfa), 1)
    _steps(LocalEngine(bp), 1)
    for (key, ours), theirs in zip(
        dfa.stack.state_dict().items(), bp.stack.state_dict().values(), strict=True
    ):
        assert torch.equal(ours, theirs), key


@pytest.mark.parametrize("projection", ["shared", "sliced", "per_block"])
def test_hidden_update_is_projected_error_times_derivative(projection: str) -> None:
    """dW_k = ((e B_k) * f'(a_k))^T h_{k-1}, by hand, for every hidden block."""
    exp = _dfa(DEEP, projection, lr=1.0, momentum=0.0)
    x, y = exp.data.train.x[:16], exp.data.train.y[:16]
    layers = [block[-2] if k == 0 else block[0] for k, block in enumerate(exp.stack.blocks)]
    with torch.no_grad():
        h = [x.flatten(1)]
        for layer in layers[:-1]:
            h.append(torch.tanh(h[-1] @ layer.weight.T + layer.bias))
        logits = h[-1] @ layers[-1].weight.T + layers[-1].bias
        e = (torch.softmax(logits, 1) - F.one_hot(y, 4)) / len(y)
    LocalEngine(exp).train_step(Batch(x, y), epoch=0)
    for k, local in enumerate(_feedbacks(exp)):
        delta = (e @ local.feedback[:, local.offset : local.end]) * (1 - h[k + 1] ** 2)
        torch.testing.assert_close(layers[k].weight.grad, delta.T @ h[k], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(layers[-1].weight.grad, e.T @ h[-1], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("model", [DEEP, CNN], ids=["mlp", "cnn"])
def test_shared_projection_equals_per_block_form_with_one_matmul(
    model: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    shared, per_block = _dfa(model, "shared"), _dfa(model, "per_block")
    shared_b = _feedbacks(shared)[0].feedback
    assert all(m.feedback is shared_b for m in _feedbacks(shared))  # one buffer
    for local in _feedbacks(per_block):
        local.feedback.copy_(shared_b[:, : local.width])  # B_k = the slice of the shared B
    calls: list[int] = []
    original = DirectFeedback.project

    def counting(self: DirectFeedback, error: torch.Tensor, columns: int) -> torch.Tensor:
        calls.append(columns)
        return original(self, error, columns)

    monkeypatch.setattr(DirectFeedback, "project", counting)
    _steps(LocalEngine(shared), 3)
    assert calls == [shared_b.shape[1]] * 3  # one projection per step, as wide as the widest
    calls.clear()
    _steps(LocalEngine(per_block), 3)
    assert len(calls) == 3 * len(_feedbacks(per_block))
    # equal up to float rounding: a matmul's last bits depend on the width of its output
    for ours, theirs in zip(
        shared.stack.state_dict().values(), per_block.stack.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_conv_blocks_receive_error_of_their_output_shape() -> None:
    exp = _dfa(CNN)
    shapes = [local.out_shape for local in _feedbacks(exp)]
    assert shapes == exp.stack.output_shapes[:-1]
    weights = {n: p for n, p in exp.stack.named_parameters() if n.endswith("weight")}
    before = {n: p.detach().clone() for n, p in weights.items()}
    _steps(LocalEngine(exp), 1)
    assert all(not torch.equal(before[n], p) for n, p in weights.items())


def test_feedback_is_fixed_and_survives_a_state_dict_round_trip() -> None:
    exp = _dfa(DEEP, weight_decay=0.1)
    before = _feedbacks(exp)[0].feedback.clone()
    engine = LocalEngine(exp)
    _steps(engine, 3)
    assert torch.equal(_feedbacks(exp)[0].feedback, before)
    state = engine.state_dict()
    fresh = _dfa(DEEP, weight_decay=0.1)
    for local in _feedbacks(fresh):
        local.feedback.zero_()
    LocalEngine(fresh).load_state_dict(state)
    assert all(torch.equal(m.feedback, before) for m in _feedbacks(fresh))
    assert all(m.feedback is _feedbacks(fresh)[0].feedback for m in _feedbacks(fresh))


def test_no_input_gradients_are_computed() -> None:
    exp = _dfa(DEEP)
    assert not exp.rule.wiring.needs_input_grad
    assert exp.rule.wiring.backward == "output_error"


def test_diagnostics_zero_for_backprop_equivalent_feedback() -> None:
    model = {"arch": "mlp", "hidden": [16], "activation": "tanh"}
    exp = _dfa(model)
    batch = Batch(exp.data.train.x[:16], exp.data.train.y[:16])
    random = exp.rule.diagnostics(exp.stack, exp.locals, batch, 0)
    assert random[(0, "grad_angle")] > 20
    _feedbacks(exp)[0].feedback.copy_(exp.stack.blocks[1][0].weight.detach())
    figures = exp.rule.diagnostics(exp.stack, exp.locals, batch, 0)
    assert set(figures) == {(0, "grad_angle"), (0, "signal_angle")}
    assert all(v < 1e-3 for v in figures.values())
    assert all(p.grad is None for p in exp.stack.parameters())


def test_run_learns_and_logs_diagnostics(tmp_path: Path) -> None:
    config = tiny_config(
        tmp_path, rule={"name": "dfa"}, train={"epochs": 6, "diagnostics_every": 8}
    )
    result = start_run(config)
    assert result.summary["accuracy"] > 0.85
    diag = [r for r in read_metrics(result.run_dir / "metrics.jsonl") if r["split"] == "diag"]
    assert {(r["block"], r["name"]) for r in diag} == {
        (k, name) for k in (0, 1) for name in ("grad_angle", "signal_angle")
    }


@pytest.mark.parametrize("projection", ["shared", "sliced", "per_block"])
def test_feedback_is_zero_mean_uniform_scaled_by_one_over_sqrt_width(projection: str) -> None:
    """B ~ U(-scale/sqrt(columns), scale/sqrt(columns)): both signs, bounded by the scale."""
    for local in _feedbacks(_dfa(DEEP, projection)):
        b = local.feedback
        bound = 1.0 / math.sqrt(b.shape[1])
        assert float(b.abs().max()) <= bound and float(b.abs().max()) > 0.9 * bound
        assert float(b.min()) < -0.5 * bound and abs(float(b.mean())) < 0.1 * bound


def test_shared_feedback_is_identical_for_equal_widths_and_sliced_is_not() -> None:
    """With equal-width blocks the shared projection hands every block the same B_k; the
    sliced form gives each its own columns of one matrix (one matmul per step still)."""
    equal = {"arch": "mlp", "hidden": [12, 12, 12], "activation": "tanh"}
    shared, sliced = _feedbacks(_dfa(equal, "shared")), _feedbacks(_dfa(equal, "sliced"))
    assert shared[0].width == shared[1].width
    a, b = (m.feedback[:, m.offset : m.end] for m in shared[:2])
    assert torch.equal(a, b)
    first, second = (m.feedback[:, m.offset : m.end].flatten() for m in sliced[:2])
    assert abs(float(F.cosine_similarity(first, second, dim=0))) < 0.5
    assert [m.offset for m in sliced] == [0, 12, 24]
