"""Oracles for DNI / cDNI (1608.05343): a perfect synthesizer is backprop, the bootstrapped
target is what the block above sends down, cDNI sees the label and DNI does not, synthetic
inputs learn the real activation, diagnostics leave no trace."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.engines.step import backward_blocks, forward_blocks
from beyond_backprop.experiment import Experiment, build_experiment
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.models.synthesizers import DNILocal, GradientSynthesizer
from beyond_backprop.rules.base import Batch, BlockContext, OutputGradient
from tests.helpers import tiny_config


class TrueGradient(GradientSynthesizer):
    """A "synthesizer" that returns the exact per-example gradient dL/dh * B, computed
    through the blocks above (it reads the label from the one-hot cDNI gives it)."""

    def __init__(self, stack: BlockStack, k: int, num_classes: int) -> None:
        super().__init__(stack.output_shapes[k], num_classes, hidden_layers=0, width=1)
        self.stack, self.k = [stack], k  # a list: not a submodule, its parameters stay out
        self.one = nn.Parameter(torch.ones(()))  # the regression must have something to train

    def forward(self, h: Tensor, y_onehot: Tensor | None = None) -> Tensor:
        assert y_onehot is not None
        stack = self.stack[0]
        with torch.enable_grad():
            leaf = h.detach().requires_grad_(True)
            logits = stack.forward_range(leaf, self.k + 1, len(stack))
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, y_onehot.argmax(1)), leaf)
        return self.one * grad * h.shape[0]


def with_true_gradients(experiment: Experiment) -> None:
    stack = experiment.stack
    for k, local in enumerate(experiment.locals[:-1]):
        assert isinstance(local, DNILocal)
        local.gradient = TrueGradient(stack, k, stack.output_shapes[-1][0])


def batches(experiment: Experiment, size: int, count: int) -> list[Batch]:
    data = experiment.data.train
    return [
        Batch(data.x[i * size : (i + 1) * size], data.y[i * size : (i + 1) * size])
        for i in range(count)
    ]


@pytest.mark.parametrize("optim", ["sgd", "adam"])
def test_true_gradient_synthesizer_gives_exactly_backprops_update(optim: str) -> None:
    torch.set_num_threads(1)
    model = {"arch": "mlp", "hidden": [16, 16, 8]}
    config = tiny_config(
        model=model,
        rule={"name": "cdni"},
        optim={"name": optim, "lr": 0.05, "schedule": "constant"},
    )
    experiment = build_experiment(config)
    reference = copy.deepcopy(experiment.stack)
    with_true_gradients(experiment)
    engine = LocalEngine(experiment)
    opt: torch.optim.Optimizer = (
        torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
        if optim == "sgd"
        else torch.optim.Adam(reference.parameters(), lr=0.05)
    )
    for batch in batches(experiment, 16, 3):  # 16: scaling by B and back is exact
        terms = engine.train_step(batch, epoch=0)
        engine.step += 1
        opt.zero_grad()
        loss = F.cross_entropy(reference(batch.x), batch.y)
        loss.backward()
        opt.step()
        assert terms[(3, "loss")] == loss.item()
        assert all(terms[(k, "synth")] == 0.0 for k in range(3))  # target == prediction
    for ours, theirs in zip(experiment.stack.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def random_last_layers(experiment: Experiment) -> None:
    """Synthesizers start at zero; give them a random last layer so every gradient is
    non-trivial."""
    torch.manual_seed(1)
    for local in experiment.locals[:-1]:
        assert isinstance(local, DNILocal) and local.gradient is not None
        nn.init.normal_(local.gradient.net[-1].weight, std=0.3)


def test_bootstrapped_target_and_injected_gradient_by_hand() -> None:
    """Block k learns from M_k(h_k)/B; M_k regresses onto B * J_{k+1}^T M_{k+1}(h_{k+1})/B
    (below the top) and onto the true gradient just below the top."""
    torch.set_num_threads(1)
    config = tiny_config(
        model={"arch": "mlp", "hidden": [8, 8, 8]}, rule={"name": "dni", "synth_reduction": "sum"}
    )
    experiment = build_experiment(config)
    random_last_layers(experiment)
    stack, locals_ = experiment.stack, experiment.locals
    x, y = experiment.data.train.x[:16], experiment.data.train.y[:16]
    size = x.shape[0]

    # by hand, on copies
    blocks, synths = copy.deepcopy(stack.blocks), copy.deepcopy(locals_)
    h = [blocks[0](x)]
    for k in (1, 2):
        h.append(blocks[k](h[-1].detach().requires_grad_(True)))
    top_in = h[2].detach().requires_grad_(True)
    (true_top,) = torch.autograd.grad(F.cross_entropy(blocks[3](top_in), y), top_in)
    predicted = [s.gradient(hk.detach()) for s, hk in zip(synths[:3], h, strict=True)]
    # J_{k+1}^T (M_{k+1}(h_{k+1}) / B), recomputed from the block's input
    targets = []
    for k in (0, 1):
        leaf = h[k].detach().requires_grad_(True)
        (g,) = torch.autograd.grad(blocks[k + 1](leaf), leaf, predicted[k + 1].detach() / size)
        targets.append(g)
    targets.append(true_top)
    expected_synth = [
        0.5 * (p - t * size).pow(2).sum(1).mean() for p, t in zip(predicted, targets, strict=True)
    ]
    expected_block_grads = [
        torch.autograd.grad(h[k], list(blocks[k].parameters()), predicted[k].detach() / size)
        for k in range(3)
    ]

    pairs = forward_blocks(list(stack.blocks), 0, x, needs_input_grad=True)
    result = backward_blocks(experiment.rule, locals_, pairs, 0, 4, Batch(x, y), 0, 0)
    for k in range(3):
        assert result.terms[(k, "synth")] == pytest.approx(expected_synth[k].item(), rel=1e-5)
        for p, g in zip(stack.blocks[k].parameters(), expected_block_grads[k], strict=True):
            torch.testing.assert_close(p.grad, g)
    # the regression trained the synthesizer only, never the block: checked by the equality
    # of block grads above; and the synthesizers did get a gradient
    for local in locals_[:3]:
        assert isinstance(local, DNILocal) and local.gradient is not None
        assert local.gradient.net[-1].weight.grad is not None


def test_synthesizer_loss_falls_to_zero_for_a_fixed_linear_gradient() -> None:
    """When the gradient above is a fixed linear map of h, M (linear) learns it exactly."""
    torch.manual_seed(0)
    config = tiny_config(
        model={"arch": "mlp", "hidden": [6]}, rule={"name": "dni", "hidden_layers": 0}
    )
    experiment = build_experiment(config)
    rule, local = experiment.rule, experiment.locals[0]
    assert isinstance(local, DNILocal) and local.gradient is not None
    linear_map = torch.randn(6, 6) * 0.5
    optimizer = torch.optim.Adam(local.parameters(), lr=0.02)
    from beyond_backprop.rules.base import BlockContext

    first = last = 0.0
    for step in range(600):
        h = torch.randn(32, 6)
        grad_above = h @ linear_map.T / 32  # a batch-mean loss: rows are 1/B of the per-example
        ctx = BlockContext(
            0,
            2,
            h,
            h.clone().requires_grad_(True),
            Batch(h, torch.zeros(32, dtype=torch.long)),
            local,
            {"grad": grad_above},
            step,
            0,
        )
        objective = rule.block_objective(0, ctx)
        optimizer.zero_grad()
        objective.terms["synth"].backward()
        optimizer.step()
        last = objective.terms["synth"].item()
        first = first or last
    assert last < 1e-4 * first


def spy_labels(experiment: Experiment) -> list[Any]:
    seen: list[Any] = []
    for local in experiment.locals[:-1]:
        assert isinstance(local, DNILocal) and local.gradient is not None
        local.gradient.register_forward_pre_hook(lambda _m, args: seen.append(args[1]))
    return seen


def test_cdni_synthesizer_receives_the_label_and_dni_does_not() -> None:
    batch_cfg: dict[str, Any] = {"model": {"arch": "mlp", "hidden": [8, 8]}}
    dni = build_experiment(tiny_config(rule={"name": "dni"}, **batch_cfg))
    cdni = build_experiment(tiny_config(rule={"name": "cdni"}, **batch_cfg))
    (batch,) = batches(dni, 16, 1)
    seen_dni, seen_cdni = spy_labels(dni), spy_labels(cdni)
    LocalEngine(dni).train_step(batch, 0)
    LocalEngine(cdni).train_step(batch, 0)
    assert seen_dni == [None, None]
    assert len(seen_cdni) == 2
    for label in seen_cdni:
        assert torch.equal(label, F.one_hot(batch.y, 4).float())
    # and the label changes cDNI's prediction once its last layer is not zero
    random_last_layers(cdni)
    random_last_layers(dni)
    h = torch.randn(16, 8)
    for experiment, depends in ((cdni, True), (dni, False)):
        synth = experiment.locals[0].gradient  # type: ignore[union-attr]
        synth.eval()
        rule = experiment.rule
        a = synth(h, rule.label(batch.y, synth))  # type: ignore[attr-defined]
        b = synth(h, rule.label((batch.y + 1) % 4, synth))  # type: ignore[attr-defined]
        assert (not torch.equal(a, b)) is depends


def test_synthetic_inputs_learn_the_real_activation() -> None:
    torch.set_num_threads(1)
    config = tiny_config(
        model={"arch": "mlp", "hidden": [16, 16]},
        rule={"name": "cdni", "synthetic_inputs": True, "input_width": 32, "width": 32},
        optim={"name": "adam", "lr": 0.01, "schedule": "constant"},
    )
    experiment = build_experiment(config)
    assert experiment.rule.wiring.forward == "synthetic"
    assert experiment.rule.wiring.backward == "delayed_gradient"
    engine = LocalEngine(experiment)
    x = experiment.data.test.x[:64]

    def input_errors() -> list[float]:
        errors = []
        with torch.no_grad():
            experiment.stack.eval()
            h = x
            for k in range(1, 3):
                h = experiment.stack.blocks[k - 1](h)
                local = experiment.locals[k]
                assert isinstance(local, DNILocal) and local.input_synth is not None
                local.eval()
                # relative to the error of predicting the mean activation: h changes scale
                # as the blocks below learn
                baseline = F.mse_loss(h.mean(0, keepdim=True).expand_as(h), h).item()
                errors.append(F.mse_loss(local.input_synth(x), h).item() / baseline)
                local.train()
            experiment.stack.train()
        return errors

    before = input_errors()
    assert experiment.locals[0] is not None and experiment.locals[0].input_synth is None
    for epoch in range(4):
        for batch in batches(experiment, 32, 8):
            terms = engine.train_step(batch, epoch)
            engine.step += 1
    after = input_errors()
    assert all(b > 1.0 for b in before), before
    assert all(a < 0.5 for a in after), (before, after)
    assert (2, "input_synth") in terms and (1, "input_synth") in terms


def test_frozen_synthesizers_leave_lower_blocks_unchanged() -> None:
    """``learn_synthesizers: false``: M stays zero, so only the top block learns."""
    config = tiny_config(rule={"name": "dni", "learn_synthesizers": False})
    experiment = build_experiment(config)
    before = copy.deepcopy(experiment.stack)
    engine = LocalEngine(experiment)
    for batch in batches(experiment, 16, 3):
        engine.train_step(batch, 0)
    for k in (0, 1):
        ours, theirs = experiment.stack.blocks[k], before.blocks[k]
        for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
            assert torch.equal(a, b)
    assert not torch.equal(experiment.stack.blocks[2][0].weight, before.blocks[2][0].weight)


def test_diagnostics_exact_for_true_gradients_and_leave_no_trace() -> None:
    model = {"arch": "mlp", "hidden": [8, 8], "batch_norm": True}
    experiment = build_experiment(tiny_config(model=model, rule={"name": "cdni"}))
    (batch,) = batches(experiment, 16, 1)
    state = copy.deepcopy(experiment.stack.state_dict())
    local_state = copy.deepcopy(experiment.locals_container.state_dict())
    figures = experiment.rule.diagnostics(experiment.stack, experiment.locals, batch, 0)
    assert set(figures) == {(k, n) for k in (0, 1) for n in ("cos", "synth_error")}
    assert figures[(0, "cos")] == 0.0  # zero-initialised synthesizers predict nothing yet
    for key, value in experiment.stack.state_dict().items():
        assert torch.equal(value, state[key]), key  # BatchNorm statistics untouched
    for key, value in experiment.locals_container.state_dict().items():
        assert torch.equal(value, local_state[key]), key
    every = [*experiment.stack.parameters(), *experiment.locals_container.parameters()]
    assert all(p.grad is None for p in every)

    with_true_gradients(experiment)
    figures = experiment.rule.diagnostics(experiment.stack, experiment.locals, batch, 0)
    for k in (0, 1):
        assert figures[(k, "cos")] == pytest.approx(1.0, abs=1e-6)
        assert figures[(k, "synth_error")] == pytest.approx(0.0, abs=1e-10)


def test_wiring_and_bad_options() -> None:
    experiment = build_experiment(tiny_config(rule={"name": "dni"}))
    assert experiment.rule.wiring.forward == "activation"
    assert experiment.rule.wiring.backward == "delayed_gradient"
    assert experiment.locals[-1] is None  # the top block learns from the task loss
    from beyond_backprop.errors import ConfigError

    with pytest.raises(ConfigError, match=r"rule\.width"):
        tiny_config(rule={"name": "dni", "width": 0})


def test_conv_synthesizers_on_feature_maps() -> None:
    """A CNN gets 5x5 conv synthesizers of ``conv_width`` channels on its feature maps."""
    model = {"arch": "cnn", "channels": [4, 8], "pool": [True, False], "fc_width": 0}
    experiment = build_experiment(tiny_config(model=model, rule={"name": "cdni", "conv_width": 6}))
    first = experiment.locals[0]
    assert isinstance(first, DNILocal) and first.gradient is not None
    assert first.gradient.feature_shape == (4, 4, 4)
    assert isinstance(first.gradient.net[0], nn.Conv2d)
    assert first.gradient.net[0].weight.shape == (6, 4 + 4, 5, 5)  # channels + one-hot label
    engine = LocalEngine(experiment)
    for batch in batches(experiment, 16, 2):
        terms = engine.train_step(batch, 0)
    assert {(0, "synth"), (1, "synth"), (2, "loss")} <= set(terms)


def test_synth_reduction_mean_is_sum_over_the_feature_count() -> None:
    values = {}
    for reduction in ("mean", "sum"):
        config = tiny_config(
            model={"arch": "mlp", "hidden": [8, 8]},
            rule={"name": "dni", "synth_reduction": reduction},
        )
        experiment = build_experiment(config)
        random_last_layers(experiment)
        x, y = experiment.data.train.x[:16], experiment.data.train.y[:16]
        pairs = forward_blocks(list(experiment.stack.blocks), 0, x, needs_input_grad=True)
        result = backward_blocks(experiment.rule, experiment.locals, pairs, 0, 3, Batch(x, y), 0, 0)
        values[reduction] = result.terms[(0, "synth")]
    assert values["mean"] == pytest.approx(values["sum"] / 8, rel=1e-6)


def test_late_regression_equals_the_in_step_one_and_leaves_batchnorm_statistics() -> None:
    """The decoupled schedule's split: without "grad" in its inbox a block still gets M(h)/B
    but no regression term; ``late_terms`` with the gradient that came later gives the same
    regression (same parameters) with the same gradient into M, and does not move
    BatchNorm's running statistics a second time."""
    torch.set_num_threads(1)
    experiment = build_experiment(
        tiny_config(model={"arch": "mlp", "hidden": [8, 8]}, rule={"name": "cdni"})
    )
    random_last_layers(experiment)
    stack, locals_, rule = experiment.stack, experiment.locals, experiment.rule
    x, y = experiment.data.train.x[:16], experiment.data.train.y[:16]
    batch = Batch(x, y)
    pairs = forward_blocks(list(stack.blocks), 0, x, needs_input_grad=True)
    in_step = backward_blocks(rule, locals_, pairs, 0, 3, batch, 0, 0)
    synth = locals_[0].gradient if isinstance(locals_[0], DNILocal) else None
    assert synth is not None
    expected_grads = [p.grad.clone() for p in synth.parameters() if p.grad is not None]
    stats = [b.clone() for b in synth.buffers()]
    grad_into_h0 = pairs[1][0].grad
    assert grad_into_h0 is not None

    synth.zero_grad(set_to_none=True)
    x_in, h_out = pairs[0]
    unlocked = BlockContext(0, 3, x_in, h_out, batch, locals_[0], {}, 0, 0)
    objective = rule.block_objective(0, unlocked)
    assert "synth" not in objective.terms and isinstance(objective, OutputGradient)
    late = BlockContext(0, 3, x_in.detach(), h_out.detach(), batch, locals_[0],
                        {"grad": grad_into_h0}, 0, 0)  # fmt: skip
    synth.zero_grad(set_to_none=True)
    moved = [b.clone() for b in synth.buffers()]
    (term,) = rule.late_terms(0, late).values()
    assert term.item() == pytest.approx(in_step.terms[(0, "synth")], rel=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(moved, synth.buffers(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(stats, moved, strict=True)) or not stats
    term.backward()
    got = [p.grad for p in synth.parameters() if p.grad is not None]
    for g, e in zip(got, expected_grads, strict=True):
        torch.testing.assert_close(g, e)


def test_forward_unlocked_block_learns_its_input_synthesizer_late() -> None:
    """On a synthetic input the block has no input term (its x_in is I(x) itself); the real
    input, when it comes, trains I_k by the same squared error as in one process."""
    torch.set_num_threads(1)
    experiment = build_experiment(tiny_config(
        model={"arch": "mlp", "hidden": [8, 8]}, rule={"name": "dni", "synthetic_inputs": True}
    ))  # fmt: skip
    stack, locals_, rule = experiment.stack, experiment.locals, experiment.rule
    batch = Batch(experiment.data.train.x[:16], experiment.data.train.y[:16])
    local = locals_[1]
    assert isinstance(local, DNILocal) and local.input_synth is not None
    estimate = rule.synthetic_input(1, local, batch)
    assert estimate is not None and estimate.shape == (16, 8)
    h1 = stack.blocks[1](estimate.detach())
    ctx = BlockContext(1, 3, estimate.detach(), h1, batch, local, {}, 0, 0, synthetic_input=True)
    assert "input_synth" not in rule.block_objective(1, ctx).terms
    real = stack.blocks[0](batch.x).detach()
    late = BlockContext(1, 3, real, h1.detach(), batch, local, {"input": real}, 0, 0)
    stats = [b.clone() for b in local.input_synth.buffers()]
    (term,) = rule.late_terms(1, late).values()
    assert all(torch.equal(a, b) for a, b in zip(stats, local.input_synth.buffers(), strict=True))
    expected = F.mse_loss(local.input_synth(batch.x), real)
    assert term.item() == pytest.approx(expected.item(), rel=1e-6)
