"""LoCo: block k learns from L_k + L_{k+1}, and nothing of L_{k+1} reaches block k-1; without
overlap it is per-block SimCLR exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.engines.step import backward_blocks, forward_blocks
from beyond_backprop.experiment import Experiment, build_experiment
from beyond_backprop.losses import nt_xent
from beyond_backprop.models.probes import ProbedLocal
from beyond_backprop.rules.base import Batch
from beyond_backprop.run import resume_run, start_run
from beyond_backprop.tracking.checkpoint import load_latest_checkpoint
from tests.unit.rules.ssl_helpers import ssl_config

CHANNELS = (4, 6, 8)  # three encoder blocks: 8x8 -> 4x4 -> 2x2 -> 2x2


def loco(**options: object) -> Experiment:
    return build_experiment(ssl_config({"name": "loco", **options}, channels=CHANNELS))


def head_loss(local: nn.Module | None, h: Tensor) -> Tensor:
    assert isinstance(local, ProbedLocal) and local.objective is not None
    z1, z2 = local.objective(h).chunk(2)
    return nt_xent(z1, z2, 0.5)


def engine_grads(experiment: Experiment, batch: Batch) -> list[list[Tensor]]:
    """Each encoder block's parameter gradients after one engine backward on ``batch``."""
    stack = experiment.stack
    encoder = list(stack.blocks[:-1])
    pairs = forward_blocks(encoder, 0, batch.x, experiment.rule.wiring.needs_input_grad)
    backward_blocks(experiment.rule, experiment.locals, pairs, 0, len(stack), batch, 0, 0)
    return [[p.grad.clone() for p in b.parameters()] for b in encoder]  # type: ignore[union-attr]


def reference_grads(experiment: Experiment, batch: Batch, reach: int) -> list[list[Tensor]]:
    """grad of block k = d/dθ_k of L_k + ... + L_{k+reach}, each loss back-propagated through
    at most ``reach`` blocks below its own (inputs of block k detached)."""
    stack, locals_ = experiment.stack, experiment.locals
    n = len(stack) - 1
    inputs = [batch.x]
    with torch.no_grad():
        for block in stack.blocks[: n - 1]:
            inputs.append(block(inputs[-1]))
    grads = []
    for k in range(n):
        h = stack.blocks[k](inputs[k])
        total = head_loss(locals_[k], h)
        for j in range(k + 1, min(n, k + reach + 1)):
            h = stack.blocks[j](h)
            total = total + head_loss(locals_[j], h)
        grads.append(list(torch.autograd.grad(total, list(stack.blocks[k].parameters()))))
    return grads


def a_batch(experiment: Experiment) -> Batch:
    data = experiment.data.train
    return experiment.rule.transform_batch(Batch(data.x[:16], data.y[:16]), 0)


def close(a: list[list[Tensor]], b: list[list[Tensor]]) -> bool:
    return all(
        torch.allclose(x, y, rtol=1e-5, atol=1e-7)
        for xs, ys in zip(a, b, strict=True)
        for x, y in zip(xs, ys, strict=True)
    )


def test_overlap_updates_exactly_the_shared_block_and_nothing_further_down() -> None:
    experiment = loco()
    experiment.stack.eval()  # BatchNorm on running statistics: the reference re-runs blocks
    batch = a_batch(experiment)
    ours = engine_grads(experiment, batch)
    assert close(ours, reference_grads(experiment, batch, reach=1))
    # block 0 with L_2 leaking two blocks down (the gradient chain not cut) is different
    leaked = reference_grads(experiment, batch, reach=2)
    assert not close(ours[:1], leaked[:1])
    # and block 0 without any overlap is different too: the overlap does reach one block
    assert not close(ours[:1], reference_grads(experiment, batch, reach=0)[:1])


def test_the_gradient_sent_down_is_the_blocks_own_loss_only() -> None:
    experiment = loco()
    experiment.stack.eval()
    stack, batch = experiment.stack, a_batch(experiment)
    with torch.no_grad():
        h0 = stack.blocks[0](batch.x)
    pairs = forward_blocks(list(stack.blocks[1:-1]), 1, h0, needs_input_grad=True)
    result = backward_blocks(experiment.rule, experiment.locals, pairs, 1, len(stack), batch, 0, 0)
    x1 = h0.clone().requires_grad_(True)
    h1 = stack.blocks[1](x1)
    (own,) = torch.autograd.grad(head_loss(experiment.locals[1], h1), x1, retain_graph=True)
    (both,) = torch.autograd.grad(
        head_loss(experiment.locals[1], h1) + head_loss(experiment.locals[2], stack.blocks[2](h1)),
        x1,
    )
    assert result.grad_below is not None
    assert torch.allclose(result.grad_below, own, rtol=1e-5, atol=1e-8)
    assert not torch.allclose(result.grad_below, both, rtol=1e-5, atol=1e-8)


def test_without_overlap_loco_is_per_block_simclr_exactly() -> None:
    engines = [
        LocalEngine(loco(overlap=False)),
        LocalEngine(
            build_experiment(ssl_config({"name": "simclr", "mode": "per_block"}, CHANNELS))
        ),
    ]
    data = engines[0].exp.data.train
    for step in range(3):
        x, y = data.x[step * 16 : (step + 1) * 16], data.y[step * 16 : (step + 1) * 16]
        for engine in engines:
            torch.manual_seed(step)
            engine.train_step(Batch(x, y), epoch=0)
            engine.step += 1
    a, b = (e.exp for e in engines)
    for p, q in zip(a.stack.parameters(), b.stack.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(a.locals_container.parameters(), b.locals_container.parameters(), strict=True):
        assert torch.equal(p, q)


def test_deeper_decoder_adds_conv_layers_to_every_head() -> None:
    experiment = loco(decoder_depth=2)
    for local in experiment.locals[:-1]:
        assert isinstance(local, ProbedLocal) and local.objective is not None
        convs = [m for m in local.objective.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == 2
    LocalEngine(experiment).train_step(a_batch_raw(experiment), epoch=0)


def a_batch_raw(experiment: Experiment) -> Batch:
    data = experiment.data.train
    return Batch(data.x[:16], data.y[:16])


@pytest.mark.parametrize("rule", ["loco", "simclr"])
def test_resume_redraws_the_same_views(tmp_path: Path, rule: str) -> None:
    """Views come from torch's global generator, which checkpoints save: stopping and resuming
    ends bitwise where an uninterrupted run ends."""
    config = ssl_config(
        {"name": rule},
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
