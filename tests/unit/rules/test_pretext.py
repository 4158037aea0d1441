"""The pretext rule: the network sees X1 only, in training and in evaluation; the loss reads X2
only; per block each block learns from its own prediction of X2."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from beyond_backprop.data.masks import half_mask
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.engines.step import backward_blocks, forward_blocks
from beyond_backprop.errors import ConfigError
from beyond_backprop.experiment import Experiment, build_experiment
from beyond_backprop.losses.reconstruction import masked_l2
from beyond_backprop.models.probes import ProbedLocal, encoder_features
from beyond_backprop.rules.base import Batch
from beyond_backprop.rules.reconstruction import ReconstructionHead
from tests.unit.rules.ssl_helpers import ssl_config

RULE = {"name": "pretext", "decoder_width": 8}


def pretext(**options: Any) -> Experiment:
    return build_experiment(ssl_config({**RULE, **options}))


def batch_of(experiment: Experiment, n: int = 16) -> Batch:
    data = experiment.data.train
    return Batch(data.x[:n], data.y[:n])


@pytest.mark.parametrize("visible", ["top", "bottom", "left", "right"])
def test_changing_x2_changes_nothing_the_network_sees(visible: str) -> None:
    experiment = pretext(visible=visible)
    rule, stack = experiment.rule, experiment.stack
    batch = batch_of(experiment)
    x2 = half_mask(8, 8, visible)  # type: ignore[arg-type]
    assert int(x2.sum()) == 32
    changed = Batch(batch.x + 50.0 * x2 * torch.randn_like(batch.x), batch.y)
    a, b = rule.transform_batch(batch, 0), rule.transform_batch(changed, 1)
    assert torch.equal(a.x, b.x)
    assert torch.equal(a.views[1][:, 0], x2.float().expand(16, -1, -1))  # the loss reads X2
    for block in stack.blocks[:-1]:
        a_x, b_x = block(a.x), block(b.x)
        assert torch.equal(a_x, b_x)
        a, b = Batch(a_x, a.y), Batch(b_x, b.y)
    stack.eval()  # evaluation and offline probes read psi(X1) too
    with torch.no_grad():
        fa = encoder_features(rule, stack, batch.x)
        fb = encoder_features(rule, stack, changed.x)
        assert all(torch.equal(u, v) for u, v in zip(fa, fb, strict=True))
        pa = rule.predictions(stack, experiment.locals, batch.x)
        pb = rule.predictions(stack, experiment.locals, changed.x)
        assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_each_block_predicts_x2_from_its_own_input() -> None:
    experiment = pretext()
    stack, rule = experiment.stack, experiment.rule
    assert not rule.wiring.needs_input_grad
    batch = rule.transform_batch(batch_of(experiment), 0)
    pairs = forward_blocks(list(stack.blocks[:-1]), 0, batch.x, False)
    backward_blocks(rule, experiment.locals, pairs, 0, len(stack), batch, 0, 0)
    target = batch_of(experiment).x
    bottom = target[:, :, 4:]  # X1 is the top half: the loss is the MSE on the bottom rows
    x = batch.x
    for k in range(len(stack) - 1):
        h = stack.blocks[k](x.detach())
        local = experiment.locals[k]
        assert isinstance(local, ProbedLocal) and isinstance(local.objective, ReconstructionHead)
        prediction = local.objective.decoder(h)
        loss = (prediction[:, :, 4:] - bottom).pow(2).mean()
        torch.testing.assert_close(loss, masked_l2(prediction, target, batch.views[1]))
        params = list(stack.blocks[k].parameters())
        for p, g in zip(params, torch.autograd.grad(loss, params), strict=True):
            torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)
        x = h


def test_end_to_end_puts_one_decoder_on_top_and_sends_gradients_down() -> None:
    experiment = pretext(mode="end_to_end")
    assert experiment.rule.wiring.backward == "gradient"
    objectives = [m.objective for m in experiment.locals if isinstance(m, ProbedLocal)]
    assert [o is None for o in objectives] == [True, False]
    summary = LocalEngine(experiment).train()
    assert 0 <= summary["accuracy"] <= 1


def test_bad_options_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"rule\.visible: 'middle' is not one of 'top'"):
        ssl_config({"name": "pretext", "visible": "middle"})
    with pytest.raises(ConfigError, match=r"rule\.decoder_pool: 0 is invalid: must be >= 1"):
        ssl_config({"name": "pretext", "decoder_pool": 0})
