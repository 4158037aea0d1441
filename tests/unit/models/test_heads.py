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


def _layout(module: nn.Module) -> list[str]:
    """Every leaf module, with kernel sizes and output sizes of the learned ones."""
    out = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            out.append(f"Conv{m.kernel_size[0]}({m.in_channels}->{m.out_channels})")
        elif isinstance(m, nn.Linear):
            out.append(f"Linear({m.in_features}->{m.out_features})")
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            out.append(f"Avg{m.output_size}")
        elif not list(m.children()):
            out.append(type(m).__name__)
    return out


def test_dgl_mlp_sr_head_is_the_official_auxiliary_network() -> None:
    """1901.08164's MLP-SR-aux on 8 channels at 16x16: average to 4x4, three 1x1 conv + BN +
    ReLU, average to 2x2, three Linear(32, 32) + BN + ReLU, Linear to the classes."""
    head = auxiliary_head((8, 16, 16), 5, HeadConfig("mlp_sr"))
    conv = ["Conv1(8->8)", "BatchNorm2d", "ReLU"]
    mlp = ["Linear(32->32)", "BatchNorm1d", "ReLU"]
    assert _layout(head) == ["Avg(4, 4)", *conv * 3, "Avg2", "Flatten", *mlp * 3, "Linear(32->5)"]
    assert all(m.bias is None for m in head.modules() if isinstance(m, nn.Conv2d))
    # the first averaging rounds up: 7x7 features average to 2x2 (ceil(7 / 4))
    assert _layout(auxiliary_head((8, 7, 7), 5, HeadConfig("mlp_sr")))[0] == "Avg(2, 2)"


def test_dgl_mlp_and_cnn_heads_are_the_official_ones() -> None:
    mlp = ["Linear(32->32)", "BatchNorm1d", "ReLU"]
    dgl_mlp = auxiliary_head((8, 16, 16), 5, HeadConfig("dgl_mlp"))
    assert _layout(dgl_mlp) == ["Avg2", "Flatten", *mlp * 3, "Linear(32->5)"]
    cnn = auxiliary_head((8, 16, 16), 5, HeadConfig("cnn"))
    conv = ["Conv3(8->8)", "BatchNorm2d", "ReLU"]
    assert _layout(cnn) == [*conv * 2, "Avg2", "BatchNorm2d", "Flatten", "Linear(32->5)"]
    for head in (dgl_mlp, cnn):
        assert head(torch.randn(3, 8, 16, 16)).shape == (3, 5)


def test_configurable_heads_layout() -> None:
    """The conv family: 3x3 convolutions, averaging to pool x pool (never global); the MLP
    family: ReLU between its linear layers; BatchNorm only when asked for."""
    conv = auxiliary_head((4, 8, 8), 5, HeadConfig("conv", depth=3, width=6, pool=2))
    block = ["Conv3(4->6)", "ReLU", "Conv3(6->6)", "ReLU"]
    assert _layout(conv) == [*block, "Avg2", "Flatten", "Linear(24->5)"]
    conv_bn = auxiliary_head((4, 8, 8), 5, HeadConfig("conv", depth=2, width=6, batchnorm=True))
    bn_layout = ["Conv3(4->6)", "BatchNorm2d", "ReLU", "Avg2", "BatchNorm2d", "Flatten"]
    assert _layout(conv_bn) == [*bn_layout, "Linear(24->5)"]
    mlp = auxiliary_head((4, 8, 8), 5, HeadConfig("pool_mlp", depth=3, width=7))
    hidden = ["Linear(16->7)", "ReLU", "Linear(7->7)", "ReLU"]
    assert _layout(mlp) == ["Avg2", "Flatten", *hidden, "Linear(7->5)"]
    assert _layout(auxiliary_head((4, 8, 8), 5, HeadConfig("mlp", depth=3, width=7))) == _layout(
        mlp
    )
