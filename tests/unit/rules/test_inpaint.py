"""Context Encoders: the network sees only the context; per block, each block learns from its
own masked reconstruction error exactly; end to end equals one backward pass through the
encoder; the adversarial terms train each side only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from beyond_backprop.config.engine import EngineConfig
from beyond_backprop.data.masks import MaskConfig, draw_masks, step_generator
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.engines.schedules import check_schedule
from beyond_backprop.engines.step import backward_blocks, forward_blocks
from beyond_backprop.errors import ConfigError
from beyond_backprop.experiment import Experiment, build_experiment
from beyond_backprop.losses.reconstruction import masked_l2
from beyond_backprop.models.decoders import ChannelwiseLinear
from beyond_backprop.models.mlp import MLPConfig
from beyond_backprop.models.probes import ProbedLocal
from beyond_backprop.rules import RULES
from beyond_backprop.rules.base import Batch
from beyond_backprop.rules.reconstruction import ReconstructionHead
from beyond_backprop.run import resume_run, start_run
from beyond_backprop.tracking.checkpoint import load_latest_checkpoint
from tests.unit.rules.ssl_helpers import ssl_config

RULE = {"name": "inpaint", "decoder_width": 8}


def inpaint(**options: Any) -> Experiment:
    return build_experiment(ssl_config({**RULE, **options}))


def raw_batch(experiment: Experiment, n: int = 16) -> Batch:
    data = experiment.data.train
    return Batch(data.x[:n], data.y[:n])


def head(experiment: Experiment, k: int) -> ReconstructionHead:
    local = experiment.locals[k]
    assert isinstance(local, ProbedLocal) and isinstance(local.objective, ReconstructionHead)
    return local.objective


def test_pixels_inside_the_mask_do_not_change_what_the_blocks_see() -> None:
    experiment = inpaint()
    rule, stack = experiment.rule, experiment.stack
    batch = raw_batch(experiment)
    mask = draw_masks(rule.config.masks, 16, 8, 8, step_generator(0, 5))  # step 5's masks
    changed = batch.x + 100.0 * mask.unsqueeze(1) * torch.randn_like(batch.x)
    a, b = rule.transform_batch(batch, 5), rule.transform_batch(Batch(changed, batch.y), 5)
    assert torch.equal(a.x, b.x)
    assert torch.equal(a.x[mask.unsqueeze(1).expand_as(a.x)], torch.zeros(int(mask.sum())))
    assert not torch.equal(a.views[0], b.views[0])  # the target does hold the hidden pixels
    ha, hb = a.x, b.x
    for block in stack.blocks[:-1]:  # training mode: BatchNorm on batch statistics
        ha, hb = block(ha), block(hb)
        assert torch.equal(ha, hb)


def test_masks_are_drawn_from_the_step_not_from_the_global_generator() -> None:
    rule = inpaint().rule
    batch = raw_batch(inpaint())
    torch.manual_seed(0)
    a = rule.transform_batch(batch, 3)
    torch.manual_seed(1)
    assert torch.equal(a.x, rule.transform_batch(batch, 3).x)
    assert not torch.equal(a.x, rule.transform_batch(batch, 4).x)


def test_each_block_learns_from_its_own_reconstruction_exactly() -> None:
    """Per block: block k's gradient is d/dθ_k of its own masked L2 (+ its probe, which reads
    detached features) on a detached input; nothing crosses a block (wiring none)."""
    experiment = inpaint(overlap=1)
    stack, rule = experiment.stack, experiment.rule
    assert rule.wiring.backward == "none" and not rule.wiring.needs_input_grad
    batch = rule.transform_batch(raw_batch(experiment), 0)
    pairs = forward_blocks(list(stack.blocks[:-1]), 0, batch.x, False)
    backward_blocks(rule, experiment.locals, pairs, 0, len(stack), batch, 0, 0)
    target, weights, _ = batch.views
    assert bool((weights == 10.0).any())  # the overlap band is in the loss
    x = batch.x
    for k in range(len(stack) - 1):
        h = stack.blocks[k](x.detach())
        decoder = head(experiment, k).decoder
        loss = masked_l2(decoder(h), target, weights)
        params = [*stack.blocks[k].parameters(), *decoder.parameters()]
        for p, g in zip(params, torch.autograd.grad(loss, params), strict=True):
            torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)
        x = h


def test_end_to_end_equals_one_backward_pass_through_the_encoder() -> None:
    experiment = inpaint(mode="end_to_end", masks={"kind": "central"})
    stack, rule = experiment.stack, experiment.rule
    assert rule.wiring.backward == "gradient"
    assert [isinstance(head_or_none(experiment, k), ReconstructionHead) for k in (0, 1)] == [
        False,
        True,
    ]
    batch = rule.transform_batch(raw_batch(experiment), 0)
    pairs = forward_blocks(list(stack.blocks[:-1]), 0, batch.x, True)
    backward_blocks(rule, experiment.locals, pairs, 0, len(stack), batch, 0, 0)
    ours = [p.grad.clone() for p in stack.blocks[:-1].parameters()]  # type: ignore[union-attr]
    stack.zero_grad()
    h = stack.blocks[1](stack.blocks[0](batch.x))
    masked_l2(head(experiment, 1).decoder(h), *batch.views[:2]).backward()
    for a, p in zip(ours, stack.blocks[:-1].parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-7)
    message = check_schedule(
        EngineConfig(stages=2, schedule="pipelined"), "inpaint", rule.wiring, {}
    )
    assert message is not None and "schedules for 'inpaint': gpipe, naive" in message


def head_or_none(experiment: Experiment, k: int) -> object:
    local = experiment.locals[k]
    assert isinstance(local, ProbedLocal)
    return local.objective


def test_adversarial_terms_train_each_side_only() -> None:
    experiment = inpaint(adversarial_weight=0.1)
    stack, rule = experiment.stack, experiment.rule
    batch = rule.transform_batch(raw_batch(experiment), 0)
    h = stack.blocks[0](batch.x)
    objective = rule.block_objective(0, _context(experiment, 0, batch.x, h, batch))
    terms = objective.terms
    assert set(terms) == {"probe", "reconstruction", "critic", "adversarial"}
    critic, decoder = head(experiment, 0).critic, head(experiment, 0).decoder
    assert critic is not None
    generator = [*stack.blocks[0].parameters(), *decoder.parameters()]
    from_critic_term = torch.autograd.grad(
        terms["critic"], [*generator, *critic.parameters()], retain_graph=True, allow_unused=True
    )
    assert all(g is None for g in from_critic_term[: len(generator)])
    assert all(g is not None for g in from_critic_term[len(generator) :])
    from_adversarial_term = torch.autograd.grad(
        terms["adversarial"], [*generator, *critic.parameters()], allow_unused=True
    )
    assert all(g is None for g in from_adversarial_term[len(generator) :])
    assert any(g is not None and bool(g.abs().sum() > 0) for g in from_adversarial_term[:4])
    assert all(head(inpaint(), k).critic is None for k in (0, 1))  # off by default


def _context(experiment: Experiment, k: int, x: torch.Tensor, h: torch.Tensor, batch: Batch) -> Any:
    from beyond_backprop.rules.base import BlockContext

    n = len(experiment.stack)
    return BlockContext(k, n, x, h, batch, experiment.locals[k], {}, 0, 0)


def test_trains_evaluates_whole_images_and_leaves_the_classifier_alone() -> None:
    experiment = inpaint()
    classifier = [p.clone() for p in experiment.stack.blocks[-1].parameters()]
    summary = LocalEngine(experiment).train()
    assert 0 <= summary["accuracy"] <= 1
    for before, after in zip(classifier, experiment.stack.blocks[-1].parameters(), strict=True):
        assert torch.equal(before, after)
    x = experiment.data.test.x[:5]
    out = experiment.rule.predictions(experiment.stack, experiment.locals, x)
    assert sorted(out, key=str) == [0, 1, None] and torch.equal(out[None], out[1])
    with torch.no_grad():  # probes read the features of the whole images
        expected = head_probe(experiment, 0)(experiment.stack.blocks[0](x))
    torch.testing.assert_close(out[0], expected)


def head_probe(experiment: Experiment, k: int) -> torch.nn.Module:
    local = experiment.locals[k]
    assert isinstance(local, ProbedLocal)
    return local.probe


def test_mlp_blocks_get_mlp_decoders() -> None:
    experiment = build_experiment(ssl_config(RULE, model={"arch": "mlp", "hidden": [16, 8]}))
    for k in (0, 1):
        assert not any(isinstance(m, ChannelwiseLinear) for m in head(experiment, k).modules())
    LocalEngine(experiment).train_step(experiment.rule.transform_batch(raw_batch(experiment), 0), 0)


def test_flat_inputs_and_bad_options_are_refused() -> None:
    flat = MLPConfig(hidden=(8,)).build((64,), 4)
    rule = RULES.get("inpaint")(RULES.get("inpaint").Config())
    with pytest.raises(ValueError, match=r"inpaint hides image regions: it needs image inputs"):
        rule.build_locals(flat)
    with pytest.raises(ConfigError, match=r"rule\.mode: 'greedy' is not one of 'per_block'"):
        ssl_config({"name": "inpaint", "mode": "greedy"})
    with pytest.raises(ConfigError, match=r"rule\.masks\.central_size: 1\.5 is invalid"):
        ssl_config({"name": "inpaint", "masks": {"kind": "central", "central_size": 1.5}})
    with pytest.raises(ConfigError) as info:
        ssl_config({"name": "inpaint", "overlap": -1, "adversarial_weight": 1.0,
                    "decoder_width": 0})  # fmt: skip
    assert str(info.value).splitlines() == [
        "rule.overlap: -1 is invalid: must be >= 0",
        "rule.adversarial_weight: 1.0 is invalid: must be in [0, 1)",
        "rule.decoder_width: 0 is invalid: must be >= 1",
    ]


def test_resume_draws_the_same_masks(tmp_path: Path) -> None:
    config = ssl_config(
        RULE,
        tmp_path=tmp_path,
        train={"epochs": 1, "log_every": 2},
        data={"name": "digits", "batch_size": 256, "train_limit": 1024},
    )
    straight = start_run(config)
    resumed = resume_run(start_run(config, stop_after=2).run_dir)
    a, b = load_latest_checkpoint(straight.run_dir), load_latest_checkpoint(resumed.run_dir)
    assert a is not None and b is not None and a[0] == b[0] == 4
    for part in ("model", "locals"):
        for key, value in a[1][part].items():
            assert torch.equal(value, b[1][part][key]), key


def test_central_mask_config_builds() -> None:
    assert inpaint(masks={"kind": "central"}).rule.config.masks == MaskConfig(kind="central")
