"""SimCLR: end to end equals one backward pass of NT-Xent through the whole encoder; the
online probes never shape the representation."""

from __future__ import annotations

import copy

import torch

from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.engines.step import backward_blocks, forward_blocks
from beyond_backprop.experiment import build_experiment
from beyond_backprop.losses import nt_xent
from beyond_backprop.models.probes import ProbedLocal
from beyond_backprop.rules.base import Batch
from tests.unit.rules.ssl_helpers import ssl_config


def test_end_to_end_equals_backprop_of_nt_xent_through_the_encoder() -> None:
    config = ssl_config({"name": "simclr", "mode": "end_to_end", "temperature": 0.3})
    experiment = build_experiment(config)
    engine = LocalEngine(experiment)
    stack, locals_ = copy.deepcopy(experiment.stack), copy.deepcopy(experiment.locals)
    top = len(stack) - 2
    heads = [m for m in locals_ if isinstance(m, ProbedLocal)]
    assert [h.objective is not None for h in heads] == [False, True]  # one head, at the top
    params = [*stack.blocks[: top + 1].parameters(), *(p for h in heads for p in h.parameters())]
    optimizer = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    data = experiment.data.train
    for step in range(3):
        x, y = data.x[step * 16 : (step + 1) * 16], data.y[step * 16 : (step + 1) * 16]
        torch.manual_seed(100 + step)
        terms = engine.train_step(Batch(x, y), epoch=0)
        engine.step += 1
        torch.manual_seed(100 + step)
        batch = experiment.rule.transform_batch(Batch(x, y), step)
        optimizer.zero_grad()
        features = []
        h = batch.x
        for block in stack.blocks[: top + 1]:
            h = block(h)
            features.append(h)
        z1, z2 = heads[-1].objective(h).chunk(2)  # type: ignore[misc]
        loss = nt_xent(z1, z2, 0.3)
        probes = sum(head.probe_loss(f, batch.y) for head, f in zip(heads, features, strict=True))
        (loss + probes).backward()
        optimizer.step()
        assert terms[(top, "nt_xent")] == loss.item()
    ours = [
        *experiment.stack.blocks[: top + 1].parameters(),
        *experiment.locals_container.parameters(),
    ]
    theirs = [*stack.blocks[: top + 1].parameters(), *(p for h in heads for p in h.parameters())]
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def test_the_classifier_block_never_runs_nor_changes() -> None:
    experiment = build_experiment(ssl_config({"name": "simclr", "mode": "per_block"}))
    classifier = copy.deepcopy(experiment.stack.blocks[-1])
    LocalEngine(experiment).train()
    for a, b in zip(classifier.parameters(), experiment.stack.blocks[-1].parameters(), strict=True):
        assert torch.equal(a, b)


def test_probes_do_not_shape_the_representation() -> None:
    """Shuffled labels change the probes' gradients, never the blocks' (probes read detached
    features)."""
    for mode in ("end_to_end", "per_block"):
        experiment = build_experiment(ssl_config({"name": "simclr", "mode": mode}))
        rule, stack = experiment.rule, experiment.stack
        data = experiment.data.train
        batch = rule.transform_batch(Batch(data.x[:16], data.y[:16]), 0)
        grads = []
        for y in (batch.y, batch.y.roll(1)):
            stack.zero_grad()
            experiment.locals_container.zero_grad()
            pairs = forward_blocks(list(stack.blocks[:-1]), 0, batch.x, True)
            backward_blocks(rule, experiment.locals, pairs, 0, len(stack), Batch(batch.x, y), 0, 0)
            blocks = [p.grad.clone() for p in stack.blocks[:-1].parameters() if p.grad is not None]
            probes = [
                p.grad.clone()
                for m in experiment.locals
                if isinstance(m, ProbedLocal)
                for p in m.probe.parameters()
            ]  # type: ignore[union-attr]
            grads.append((blocks, probes))
        (blocks_a, probes_a), (blocks_b, probes_b) = grads
        assert len(blocks_a) == len(list(stack.blocks[:-1].parameters()))
        assert all(torch.equal(a, b) for a, b in zip(blocks_a, blocks_b, strict=True))
        assert not all(torch.equal(a, b) for a, b in zip(probes_a, probes_b, strict=True))


def test_predictions_are_the_probes_of_every_encoder_block() -> None:
    experiment = build_experiment(ssl_config({"name": "simclr"}))
    x = experiment.data.test.x[:5]
    out = experiment.rule.predictions(experiment.stack, experiment.locals, x)
    assert sorted(out, key=str) == [0, 1, None]
    assert all(logits.shape == (5, 10) for logits in out.values())
    assert torch.equal(out[None], out[1])
