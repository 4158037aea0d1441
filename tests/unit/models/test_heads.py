"""Auxiliary heads and block grouping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from beyond_backprop.models.grouping import group_blocks
from beyond_backprop.models.heads import HeadConfig, auxiliary_head, build_heads, head_predictions
from beyond_backprop.models.stack import BlockStack


def _stack() -> BlockStack:
    blocks = [
        nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Flatten(), nn.Linear(6 * 4 * 4, 5)),
    ]
    return BlockStack(blocks, (1, 8, 8))


def _learned(module: nn.Module) -> list[str]:
    return [type(m).__name__ for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


@pytest.mark.parametrize(
    ("config", "layers"),
    [
        (HeadConfig("conv", depth=1), ["Linear"]),
        (HeadConfig("conv", depth=3, width=7), ["Conv2d", "Conv2d", "Linear"]),
        (HeadConfig("mlp", depth=3, width=7), ["Linear", "Linear", "Linear"]),
    ],
)
def test_head_families(config: HeadConfig, layers: list[str]) -> None:
    head = auxiliary_head((4, 8, 8), 5, config)
    assert _learned(head) == layers
    assert head(torch.zeros(3, 4, 8, 8)).shape == (3, 5)


def test_mlp_head_averages_to_pool_first() -> None:
    head = auxiliary_head((4, 8, 8), 5, HeadConfig("mlp", depth=1, pool=2))
    first_linear = next(m for m in head.modules() if isinstance(m, nn.Linear))
    assert first_linear.in_features == 4 * 2 * 2


def test_flat_features() -> None:
    head = auxiliary_head((10,), 3, HeadConfig("conv", depth=2, width=6))
    assert _learned(head) == ["Linear", "Linear"]
    with pytest.raises(ValueError, match="features"):
        auxiliary_head((2, 3), 3, HeadConfig())


def test_build_heads_skips_the_last_block_and_predictions() -> None:
    stack = _stack()
    heads = build_heads(stack, HeadConfig())
    assert [h is not None for h in heads] == [True, True, False]
    assert [h is not None for h in build_heads(stack, HeadConfig(), [1, 2])] == [False, True, False]
    x = torch.randn(2, 1, 8, 8)
    preds = head_predictions(stack, heads, x)
    assert set(preds) == {None, 0, 1, 2}
    assert torch.equal(preds[None], stack(x)) and torch.equal(preds[2], preds[None])


def test_group_blocks_merges_in_place() -> None:
    stack = _stack()
    x = torch.randn(2, 1, 8, 8)
    expected = stack(x)
    params = {id(p) for p in stack.parameters()}
    report = group_blocks(stack, [2])
    assert len(stack) == 2 and report == ["block 0 = architecture blocks 0..1"]
    assert stack.output_shapes == [(6, 4, 4), (5,)]
    assert {id(p) for p in stack.parameters()} == params
    assert torch.equal(stack(x), expected)
    assert group_blocks(stack, []) == []
    with pytest.raises(ValueError, match="boundaries"):
        group_blocks(_stack(), [3])
