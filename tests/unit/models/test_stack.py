from __future__ import annotations

import pytest
import torch
from torch import nn

from beyond_backprop.models import ARCHITECTURES, BlockStack


@pytest.mark.parametrize("arch", ARCHITECTURES.names())
@pytest.mark.parametrize("input_shape", [(1, 8, 8), (3, 12, 12)])
def test_debug_architectures_infer_shapes_and_compose(
    arch: str, input_shape: tuple[int, ...]
) -> None:
    stack = ARCHITECTURES.get(arch).debug().build(input_shape, num_classes=5)
    x = torch.randn(3, *input_shape)
    h = x
    for k in range(len(stack)):
        h = stack.forward_range(h, k, k + 1)
        assert tuple(h.shape[1:]) == stack.output_shapes[k]
        assert stack.input_shape_of(k + 1) == stack.output_shapes[k]
    assert stack.output_shapes[-1] == (5,)
    torch.testing.assert_close(stack(x), h, rtol=0, atol=0)
    torch.testing.assert_close(stack.forward_range(stack.forward_range(x, 0, 1), 1, len(stack)), h)


def test_shape_inference_leaves_batchnorm_statistics_alone() -> None:
    stack = BlockStack([nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))], (4,))
    bn = stack.blocks[0][1]
    assert torch.equal(bn.running_mean, torch.zeros(3)) and int(bn.num_batches_tracked) == 0
    assert stack.training


def test_partition_even_and_explicit() -> None:
    stack = BlockStack([nn.Identity() for _ in range(8)], (2,))
    assert stack.partition(3) == [range(0, 3), range(3, 6), range(6, 8)]
    assert stack.partition(8)[-1] == range(7, 8)
    assert stack.partition([2, 5]) == [range(0, 2), range(2, 5), range(5, 8)]
    with pytest.raises(ValueError, match=r"valid: 1\.\.8"):
        stack.partition(9)
    with pytest.raises(ValueError, match="increase strictly"):
        stack.partition([5, 2])
    with pytest.raises(ValueError, match="increase strictly"):
        stack.partition([0, 3])


def test_cnn_checks_pool_length() -> None:
    config = ARCHITECTURES.get("cnn")(channels=(4, 8), pool=(True,))
    with pytest.raises(ValueError, match="one pool flag per conv block"):
        config.build((1, 8, 8), 3)
