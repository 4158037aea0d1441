"""Oracle: back-propagation through the engine, block by block, equals ``loss.backward()`` on
the whole stack, bitwise."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules.base import Batch
from tests.helpers import tiny_config


@pytest.mark.parametrize(
    "model",
    [
        {"arch": "mlp", "hidden": [16, 16, 8], "batch_norm": True},
        {"arch": "cnn", "channels": [4, 8], "pool": [True, False], "fc_width": 12},
    ],
    ids=["mlp", "cnn"],
)
@pytest.mark.parametrize("optim", ["sgd", "adam"])
def test_engine_steps_equal_whole_model_backward(model: dict[str, object], optim: str) -> None:
    config = tiny_config(model=model, optim={"name": optim, "lr": 0.05, "schedule": "constant"})
    experiment = build_experiment(config)
    reference = copy.deepcopy(experiment.stack)
    engine = LocalEngine(experiment)
    reference_optimizer = (
        torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
        if optim == "sgd"
        else torch.optim.Adam(reference.parameters(), lr=0.05)
    )
    data = experiment.data.train
    for step in range(3):
        x, y = data.x[step * 16 : (step + 1) * 16], data.y[step * 16 : (step + 1) * 16]
        terms = engine.train_step(Batch(x, y), epoch=0)
        engine.step += 1
        reference_optimizer.zero_grad()
        loss = F.cross_entropy(reference(x), y)
        loss.backward()
        reference_optimizer.step()
        assert terms[(len(reference) - 1, "loss")] == loss.item()
    for ours, theirs in zip(
        experiment.stack.state_dict().values(), reference.state_dict().values(), strict=True
    ):
        assert torch.equal(ours, theirs)


def test_backprop_sends_the_true_gradient_down() -> None:
    """The gradient block 0 receives is dL/dh_0 of the whole network."""
    experiment = build_experiment(tiny_config())
    stack, data = experiment.stack, experiment.data.train
    h0 = stack.forward_range(data.x[:8], 0, 1).detach().requires_grad_(True)
    loss = F.cross_entropy(stack.forward_range(h0, 1, len(stack)), data.y[:8])
    (expected,) = torch.autograd.grad(loss, h0)
    from beyond_backprop.engines.step import backward_blocks, forward_blocks

    pairs = forward_blocks(list(stack.blocks), 0, data.x[:8], needs_input_grad=True)
    result = backward_blocks(
        experiment.rule,
        experiment.locals,
        pairs[1:],
        1,
        len(stack),
        Batch(data.x[:8], data.y[:8]),
        0,
        0,
    )
    assert result.grad_below is not None
    assert torch.equal(result.grad_below, expected)
