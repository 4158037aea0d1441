"""Oracles for forward gradients: one seeded tangent gives exactly (grad . v) v (weight mode)
and the Jacobian of (dL/dz . u) u (activity mode); averaged over N tangents the estimate
converges to the true gradient with an error shrinking like 1/sqrt(N); one tangent's variance
grows with the dimension as (n + 1) |grad|^2."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from beyond_backprop.autograd.forward_gradient import forward_gradient
from beyond_backprop.config import ExperimentConfig
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.errors import ConfigError
from beyond_backprop.experiment import Experiment, build_experiment
from beyond_backprop.rules import RULES
from beyond_backprop.rules.base import Batch, BlockContext
from tests.helpers import tiny_config
from tests.integration.staged_harness import spawn, train_local, train_staged

MODEL = {"arch": "mlp", "hidden": [8, 6]}


def _experiment(mode: str, num_tangents: int = 1) -> Experiment:
    rule = {"name": "forward_gradient", "mode": mode, "num_tangents": num_tangents}
    return build_experiment(tiny_config(model=MODEL, rule=rule))


def _engine_grads(exp: Experiment, k: int) -> list[torch.Tensor]:
    """The gradients one engine step (step 0) leaves on block k and its head."""
    x, y = exp.data.train.x[:16], exp.data.train.y[:16]
    LocalEngine(exp).train_step(Batch(x, y), epoch=0)
    params = [*exp.stack.blocks[k].parameters(), *exp.locals[k].parameters()]  # type: ignore[union-attr]
    return [p.grad.clone() for p in params]  # type: ignore[union-attr]


def _true_grads(exp: Experiment, k: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Block k's local-loss gradient by plain backprop, and its output."""
    x, y = exp.data.train.x[:16], exp.data.train.y[:16]
    with torch.no_grad():
        x_in = exp.stack.forward_range(x, 0, k)
    block, head = exp.stack.blocks[k], exp.locals[k]
    assert head is not None
    params = [*block.parameters(), *head.parameters()]
    z = block(x_in)
    loss = F.cross_entropy(head(z), y)
    return list(torch.autograd.grad(loss, params)), z


def test_weight_mode_one_tangent_is_directional_derivative_times_tangent() -> None:
    exp = _experiment("weight")
    true, _ = _true_grads(exp, 1)  # before the step changes anything
    # block 1's tangents at step 0 come from its own seed, whatever block 0 drew
    torch.manual_seed(exp.rule.tangent_seed(0, 1))  # type: ignore[attr-defined]
    tangents = [torch.randn_like(g) for g in true]
    d = sum(float((g * v).sum()) for g, v in zip(true, tangents, strict=True))
    ours = _engine_grads(exp, 1)
    for got, v in zip(ours, tangents, strict=True):
        torch.testing.assert_close(got, d * v, rtol=1e-4, atol=1e-6)


def test_activity_mode_one_tangent_goes_through_the_block_jacobian() -> None:
    exp = _experiment("activity")
    true, _ = _true_grads(exp, 1)
    block_params = list(exp.stack.blocks[1].parameters())
    head = exp.locals[1]
    assert head is not None
    with torch.no_grad():
        x_in = exp.stack.blocks[0](exp.data.train.x[:16])
    z = exp.stack.blocks[1](x_in)
    torch.manual_seed(exp.rule.tangent_seed(0, 1))  # type: ignore[attr-defined]
    u = torch.randn_like(z)
    (dz,) = torch.autograd.grad(
        F.cross_entropy(head(z), exp.data.train.y[:16]), z, retain_graph=True
    )
    expected = torch.autograd.grad(z, block_params, grad_outputs=float((dz * u).sum()) * u)
    ours = _engine_grads(exp, 1)
    for got, want in zip(ours, [*expected, *true[len(block_params) :]], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def _rule_grads(exp: Experiment, k: int, num_tangents: int, step: int = 0) -> torch.Tensor:
    """Block k's update from the rule alone (its objective at ``step``, back-propagated),
    flattened."""
    x, y = exp.data.train.x[:16], exp.data.train.y[:16]
    with torch.no_grad():
        x_in = exp.stack.forward_range(x, 0, k)
    block, head = exp.stack.blocks[k], exp.locals[k]
    assert head is not None
    params = [*block.parameters(), *head.parameters()]
    rule = RULES.get("forward_gradient")(replace(exp.rule.config, num_tangents=num_tangents))
    rule.build_locals(exp.stack)
    ctx = BlockContext(k, len(exp.stack), x_in, block(x_in), Batch(x, y), head, {}, step, 0)
    objective = rule.block_objective(k, ctx)
    grads = torch.autograd.grad(objective.terms["loss"], params)
    return torch.cat([g.flatten() for g in grads])


@pytest.mark.parametrize("mode", ["weight", "activity"])
def test_many_tangents_converge_to_the_true_gradient(mode: str) -> None:
    """The averaged estimate approaches the true local gradient: 16x the tangents, about a
    quarter of the error."""
    exp = _experiment(mode)
    true, _ = _true_grads(exp, 1)
    flat_true = torch.cat([g.flatten() for g in true])
    torch.manual_seed(0)
    # the mean relative error over 3 steps (3 independent draws of the tangents)
    error = {
        n: sum(
            float((_rule_grads(exp, 1, n, step) - flat_true).norm() / flat_true.norm())
            for step in range(3)
        )
        / 3
        for n in (100, 1600)
    }
    assert error[1600] < 0.3
    assert error[1600] < error[100] / 2.5


def _fn() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 5, generator=generator), torch.randint(0, 3, (12,), generator=generator)
    w, b = torch.randn(3, 5, generator=generator), torch.randn(3, generator=generator)
    return x, y, w, b


def test_error_of_the_mean_shrinks_like_one_over_sqrt_n() -> None:
    """RMS error of the N-tangent estimate, over 12 seeded repetitions: about sqrt((n+1)/N)
    |grad| (n = 18 parameters), so 16x the tangents give a quarter of the error."""
    x, y, w, b = _fn()

    def loss(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(x @ w.T + b, y)

    wr, br = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    true = torch.cat([g.flatten() for g in torch.autograd.grad(loss(wr, br), [wr, br])])
    torch.manual_seed(0)
    rms = {}
    for n in (16, 256):
        errors = []
        for _ in range(12):
            _, grads = forward_gradient(loss, [w, b], n)
            errors.append(float((torch.cat([g.flatten() for g in grads]) - true).norm() ** 2))
        rms[n] = math.sqrt(sum(errors) / len(errors)) / float(true.norm())
        assert 0.6 < rms[n] / math.sqrt(19 / n) < 1.4
    assert 3.0 < rms[16] / rms[256] < 5.3


def test_variance_grows_with_dimension() -> None:
    """f(t) = a . t with |a| = 1: one tangent's E|g - a|^2 = n + 1."""
    torch.manual_seed(0)
    variances = {}
    for n in (4, 64):
        a = torch.ones(n) / math.sqrt(n)
        samples = torch.stack([forward_gradient(a.dot, [torch.zeros(n)])[1][0] for _ in range(800)])
        assert torch.allclose(samples.mean(0), a, atol=0.25)  # unbiased
        variances[n] = float((samples - a).pow(2).sum(1).mean())
        assert 0.8 < variances[n] / (n + 1) < 1.2
    assert variances[64] > 8 * variances[4]


def test_trains_and_logs_per_block_accuracy() -> None:
    cfg = tiny_config(
        model=MODEL,
        rule={"name": "forward_gradient", "num_tangents": 4},
        optim={"name": "adam", "lr": 0.01},
        train={"epochs": 4},
    )
    summary = LocalEngine(build_experiment(cfg)).train()
    assert summary["eval"]["0/accuracy"] > 0.5 and "2/accuracy" in summary["eval"]


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="num_tangents"):
        tiny_config(rule={"name": "forward_gradient", "num_tangents": 0})
    with pytest.raises(ConfigError, match="mode"):
        tiny_config(rule={"name": "forward_gradient", "mode": "activities"})


def _staged_config(schedule: str, stages: int, mode: str) -> ExperimentConfig:
    return tiny_config(
        model={"arch": "mlp", "hidden": [16, 16, 16]},
        rule={"name": "forward_gradient", "mode": mode},
        engine={"stages": stages, "schedule": schedule, "threads": 1},
        optim={"name": "sgd", "lr": 0.1, "momentum": 0.9, "schedule": "constant"},
        train={"max_steps": 4},
    )


@pytest.mark.parametrize("mode", ["weight", "activity"])
def test_two_stages_draw_the_same_tangents_as_one_process(mode: str, tmp_path: Path) -> None:
    """Each block's tangents are seeded by the step and the block alone: the pipelined 2-stage
    run (two processes: forward-mode AD's dual levels are global, so not threads) leaves
    bitwise the one-process parameters."""
    outcomes = spawn(tmp_path, train_staged, _staged_config("pipelined", 2, mode), False, [2])
    assert all(o["ok"] for o in outcomes), outcomes
    local = train_local(_staged_config("naive", 1, mode), False)
    staged = outcomes[0]["result"]["stack"]
    assert staged.keys() == local["stack"].keys()
    assert all(torch.equal(staged[key], local["stack"][key]) for key in staged)
