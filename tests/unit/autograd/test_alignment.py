"""Angles and side-effect-free gradients for the alignment diagnostics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from beyond_backprop.autograd.alignment import angle_degrees, stack_gradients, untouched
from beyond_backprop.models.stack import BlockStack


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([1.0, 0.0], [2.0, 0.0], 0.0),
        ([1.0, 0.0], [0.0, 3.0], 90.0),
        ([1.0, 0.0], [-1.0, 0.0], 180.0),
        ([1.0, 0.0], [0.5, 0.75**0.5], 60.0),
    ],
)
def test_angle_degrees_known_values(a: list[float], b: list[float], expected: float) -> None:
    assert angle_degrees(torch.tensor(a), torch.tensor(b)) == pytest.approx(expected, abs=1e-5)


def test_angle_of_lists_concatenates() -> None:
    a = [torch.tensor([[1.0]]), torch.tensor([0.0, 0.0])]
    b = [torch.tensor([[0.0]]), torch.tensor([1.0, 0.0])]
    assert angle_degrees(a, b) == pytest.approx(90.0)
    assert angle_degrees(a, a) == 0.0


def test_angle_with_zero_is_nan_and_shapes_must_match() -> None:
    assert math.isnan(angle_degrees(torch.zeros(3), torch.ones(3)))
    with pytest.raises(ValueError, match="cannot compare"):
        angle_degrees(torch.ones(3), torch.ones(4))


def _stack() -> BlockStack:
    blocks = [
        nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.3)),
        nn.Sequential(nn.Linear(6, 3)),
    ]
    return BlockStack(blocks, (8,))


def test_stack_gradients_are_backprops_and_leave_no_trace() -> None:
    stack = _stack()
    x, y = torch.randn(10, 8), torch.randint(0, 3, (10,))
    buffers = {k: v.clone() for k, v in stack.state_dict().items()}
    rng = torch.get_rng_state()
    params, signals = stack_gradients(stack, x, y)
    assert all(p.grad is None for p in stack.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    for key, value in stack.state_dict().items():
        assert torch.equal(value, buffers[key]), key
    # the same dropout mask is drawn again by the reference pass (same RNG state)
    h = stack.blocks[0](x)
    loss = F.cross_entropy(stack.blocks[1](h), y)
    expected = torch.autograd.grad(loss, [*stack.parameters(), h])
    ours = [*params[0], *params[1], signals[0]]
    for a, b in zip(ours, expected, strict=True):
        assert torch.equal(a, b)


def test_untouched_restores_buffers_and_rng_on_error() -> None:
    stack = _stack()
    mean = stack.blocks[0][2].running_mean.clone()
    rng = torch.get_rng_state()
    with pytest.raises(RuntimeError), untouched(stack):
        stack(torch.randn(10, 8))
        raise RuntimeError("boom")
    assert torch.equal(stack.blocks[0][2].running_mean, mean)
    assert torch.equal(torch.get_rng_state(), rng)
