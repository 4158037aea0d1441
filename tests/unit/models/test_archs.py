"""The image architectures against their papers: block shapes, parameter counts, FLOPs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from beyond_backprop.config import build_experiment_config
from beyond_backprop.errors import ConfigError
from beyond_backprop.models import BlockStack
from beyond_backprop.models.cifar_cnn import CifarCNNConfig
from beyond_backprop.models.resnet import ResNetConfig
from beyond_backprop.models.vgg import VGGConfig


def _params(stack: nn.Module) -> int:
    return sum(p.numel() for p in stack.parameters())


def _multiply_adds(stack: BlockStack) -> int:
    """Multiply-adds of every convolution and linear layer for one example (the FLOPs of
    He et al.'s Table 1)."""
    total = 0

    def count(layer: nn.Module, _: object, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            kh, kw = layer.kernel_size
            total += out[0].numel() * layer.in_channels // layer.groups * kh * kw
        elif isinstance(layer, nn.Linear):
            total += layer.in_features * layer.out_features

    for layer in stack.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            layer.register_forward_hook(count)
    with torch.no_grad():
        stack(torch.zeros(1, *stack.input_shape))
    return total


@pytest.mark.parametrize(("depth", "layers"), [(11, 8), (13, 10), (16, 13), (19, 16)])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_vgg_blocks_per_depth(depth: int, layers: int, shape: tuple[int, ...]) -> None:
    stages = VGGConfig(depth=depth, width=1 / 16).build(shape, 10)  # type: ignore[arg-type]
    assert len(stages) == 6  # five conv stages and the classifier
    side = 16 if shape[1] == 32 else 14
    assert stages.output_shapes[:2] == [(4, side, side), (8, side // 2, side // 2)]
    assert stages.output_shapes[-2:] == [(32, 1, 1), (10,)]  # 28 -> 14 -> 7 -> 4 -> 2 -> 1
    per_layer = VGGConfig(depth=depth, width=1 / 16, granularity="layer").build(shape, 10)  # type: ignore[arg-type]
    assert len(per_layer) == layers + 1
    assert per_layer.output_shapes[-2:] == stages.output_shapes[-2:]


def test_vgg_parameter_counts_match_the_papers() -> None:
    """Simonyan and Zisserman (arXiv 1409.1556) Table 2: 133, 133, 138, 144 million
    parameters for configs A, B, D, E (224x224 inputs, 1000 classes, no BatchNorm)."""
    with torch.device("meta"):  # shapes only: 138M parameters would take half a gigabyte
        counts = {
            depth: _params(
                VGGConfig(depth=depth, batch_norm=False, head="imagenet").build((3, 224, 224), 1000)  # type: ignore[arg-type]
            )
            for depth in (11, 13, 16, 19)
        }
    assert counts == {11: 132_863_336, 13: 133_047_848, 16: 138_357_544, 19: 143_667_240}
    assert [round(c / 1e6) for c in counts.values()] == [133, 133, 138, 144]
    # VGG-16 with BatchNorm and the CIFAR head: Li et al. (arXiv 1608.08710, Table 1, VGG-16
    # on CIFAR-10) give 3.13e8 FLOPs and 1.5e7 parameters
    cifar = VGGConfig(depth=16).build((3, 32, 32), 10)
    assert _params(cifar) == 14_728_266
    assert float(f"{_params(cifar):.2g}") == 1.5e7
    assert round(_multiply_adds(cifar) / 1e8, 2) == 3.13


# option A (zero-padded identity) figures of He et al. Table 6, and our option B counts
CIFAR_RESNETS = [(20, 0.27e6, 272_474), (32, 0.46e6, 466_906), (56, 0.85e6, 855_770),
                 (110, 1.7e6, 1_730_714)]  # fmt: skip
PROJECTIONS = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
"""Option B's two 1x1 shortcut convolutions with their BatchNorm (width 1)."""


@pytest.mark.parametrize(("depth", "published", "ours"), CIFAR_RESNETS)
def test_cifar_resnet_parameter_counts_match_table_6(
    depth: int, published: float, ours: int
) -> None:
    stack = ResNetConfig(depth=depth).build((3, 32, 32), 10)
    assert _params(stack) == ours
    digits = 1 if published >= 1e6 else 2  # the table's precision: 0.27M, 1.7M
    assert round((ours - PROJECTIONS) / 1e6, digits) == published / 1e6
    n = (depth - 2) // 6
    assert len(stack) == 3 * n + 1
    assert [stack.output_shapes[k] for k in (n - 1, 2 * n - 1, 3 * n - 1, 3 * n)] == [
        (16, 32, 32), (32, 16, 16), (64, 8, 8), (10,)
    ]  # fmt: skip
    staged = ResNetConfig(depth=depth, granularity="stage").build((1, 28, 28), 10)
    assert staged.output_shapes == [(16, 28, 28), (32, 14, 14), (64, 7, 7), (10,)]


@pytest.mark.parametrize(
    ("depth", "gflops", "params", "blocks"),
    [(18, 1.8, 11_689_512, 8), (34, 3.6, 21_797_672, 16), (50, 3.8, 25_557_032, 16),
     (152, 11.3, 60_192_808, 50)],
)  # fmt: skip
def test_imagenet_resnets_match_table_1(
    depth: int, gflops: float, params: int, blocks: int
) -> None:
    """He et al. Table 1's FLOPs (multiply-adds at 224x224; the stride on the bottleneck's
    first 1x1 convolution, as in the paper) and the parameter counts of the standard
    implementations."""
    with torch.device("meta"):
        stack = ResNetConfig(depth=depth, family="imagenet").build((3, 224, 224), 1000)
        assert abs(_multiply_adds(stack) / 1e9 - gflops) < 0.07
    assert _params(stack) == params
    assert len(stack) == blocks + 1
    assert stack.output_shapes[-2][1:] == (7, 7)


def test_imagenet_resnet_on_small_images_and_the_small_stem() -> None:
    config = ResNetConfig(depth=18, family="imagenet", width=0.125, granularity="stage")
    assert config.build((3, 32, 32), 10).output_shapes[:4] == [
        (8, 8, 8), (16, 4, 4), (32, 2, 2), (64, 1, 1)
    ]  # fmt: skip
    small = ResNetConfig(depth=18, family="imagenet", width=0.125, stem="small")
    assert small.build((1, 28, 28), 10).output_shapes[0] == (8, 28, 28)


def test_cifar_cnn_has_the_dgl_shape() -> None:
    """The authors' ``Net(depth=6, feature_size=128, downsample=[1, 3])``."""
    stack = CifarCNNConfig().build((3, 32, 32), 10)
    assert stack.output_shapes == [
        (128, 32, 32), (256, 16, 16), (256, 16, 16), (512, 8, 8), (512, 8, 8), (512, 8, 8),
        (10,),
    ]  # fmt: skip
    top = stack.blocks[-1]
    assert [m.out_features for m in top if isinstance(m, nn.Linear)] == [2048, 2048, 10]
    assert CifarCNNConfig().build((1, 28, 28), 10).output_shapes[-2] == (512, 7, 7)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"arch": "vgg", "depth": 12}, ["model.depth: 12 is not one of 11, 13, 16, 19"]),
        ({"arch": "vgg", "width": 0, "fc_width": 0}, ["model.width: 0", "model.fc_width: 0"]),
        ({"arch": "resnet", "depth": 21}, ["model.depth: 21 is invalid: family cifar"]),
        ({"arch": "resnet", "depth": 20, "family": "imagenet"}, ["model.depth: 20 is invalid"]),
        ({"arch": "cifar_cnn", "depth": 3, "downsample": [3]}, ["model.downsample: [3]"]),
        ({"arch": "cifar_cnn", "fc_width": 0, "mlp_layers": -1},
         ["model.mlp_layers", "model.fc_width"]),
    ],
)  # fmt: skip
def test_bad_options_are_reported_with_their_key(model: dict, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        build_experiment_config({"model": model})
    assert len(info.value.problems) == len(expected)
    for fragment in expected:
        assert any(fragment in line for line in info.value.problems), info.value.problems


def test_building_a_bad_config_in_code_fails_clearly() -> None:
    with pytest.raises(ConfigError, match=r"model\.downsample: \[2, 1\] is invalid"):
        CifarCNNConfig(downsample=(2, 1)).build((3, 32, 32), 10)
    with pytest.raises(ValueError, match=r"resnet needs image inputs"):
        ResNetConfig().build((784,), 10)
