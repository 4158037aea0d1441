from __future__ import annotations

import pytest
import torch
from torch import nn

from beyond_backprop.models import BlockStack


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )


@pytest.mark.parametrize("split_points", [[], [4], [3, 6], list(range(1, 9))])
def test_from_sequential_is_the_models_own_forward(split_points: list[int]) -> None:
    model = _model()
    x = torch.randn(5, 3, 16, 16)
    expected = model(x)  # training mode: BatchNorm uses the batch, and updates its statistics
    stack = BlockStack.from_sequential(model, split_points, (3, 16, 16))
    assert len(stack) == len(split_points) + 1
    assert torch.equal(stack(x), expected)
    assert torch.equal(stack.forward_range(stack.forward_range(x, 0, 1), 1, len(stack)), expected)
    # the same parameter objects: training the stack trains the model
    assert {id(p) for p in stack.parameters()} == {id(p) for p in model.parameters()}
    assert stack.output_shapes[-1] == (10,)


def test_from_sequential_takes_a_list_of_modules() -> None:
    """A torchvision-style model given as its children in forward order (the flatten its
    ``forward`` does inline added as a module)."""
    model = _model()
    children = list(model)
    stack = BlockStack.from_sequential(children, [4, 7], (3, 16, 16))
    assert stack.output_shapes == [(4, 8, 8), (8, 1, 1), (10,)]
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    stack.eval()
    assert torch.equal(stack(x), model(x))


@pytest.mark.parametrize(
    ("split_points", "message"),
    [
        ([0], r"split_points\[0\] = 0 is invalid: .* within 1\.\.8 \(the model has 9 children\)"),
        ([9], r"split_points\[0\] = 9 is invalid"),
        ([4, 4], r"split_points\[1\] = 4 is invalid: .* valid here: 5\.\.8"),
        ([5, 2], r"split_points\[1\] = 2 is invalid"),
        ([8, 9], r"split_points\[1\] = 9 is invalid: .* valid here: none"),
    ],
)
def test_bad_split_points_name_the_value_and_the_range(
    split_points: list[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BlockStack.from_sequential(_model(), split_points, (3, 16, 16))
