"""Small pieces shared by the image architectures (``vgg``, ``resnet``, ``cifar_cnn``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import torch
from torch import Tensor, nn

from beyond_backprop.errors import ConfigError

MAX_WIDTH = 64.0
"""The largest width multiplier of ``vgg`` and ``resnet`` (64 x VGG-16 is 5e11 parameters)."""


class _Checked(Protocol):
    def problems(self) -> list[tuple[str, str]]: ...


def check(config: _Checked) -> None:
    """Raise ``ConfigError`` listing every problem of an architecture config built in code
    (configs read from YAML are checked before they are built)."""
    found = config.problems()
    if found:
        raise ConfigError([f"model.{key}: {message}" for key, message in found])


def at_least_one(config: object, names: Sequence[str]) -> list[tuple[str, str]]:
    """(field, message) for each of ``names`` whose value is below 1."""
    return [
        (name, f"{getattr(config, name)} is invalid: must be >= 1")
        for name in names
        if getattr(config, name) < 1
    ]


def scaled(channels: int, width: float) -> int:
    """``channels`` times the width multiplier, at least one channel."""
    return max(1, round(channels * width))


def image_shape(arch: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``input_shape`` as ``(C, H, W)``, or a clear error for flat inputs."""
    if len(input_shape) != 3:
        raise ValueError(f"{arch} needs image inputs (C, H, W), got shape {input_shape}")
    c, h, w = input_shape
    return c, h, w


def pooled_classifier(features: int, num_classes: int) -> nn.Sequential:
    """Global average pooling then one linear layer: any input size (28x28 digits, 32x32
    CIFAR images, 224x224 ImageNet crops) gives the same classifier."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(features, num_classes))


def kaiming_init(module: nn.Module) -> None:
    """He et al.'s initialisation (arXiv 1502.01852, Sec. 2.2; fan-out, as torchvision's ResNet
    and VGG) for every convolution, BatchNorm at scale 1 and shift 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


@contextmanager
def in_fp32(x: Tensor) -> Iterator[Tensor]:
    """Under autocast (bf16 / fp16 training), run the enclosed code in fp32 on ``x`` in fp32:
    the modules whose numbers must not be rounded (feedback matrices, synthesizers). Outside
    autocast: ``x`` as it is, and nothing changes."""
    if not torch.is_autocast_enabled(x.device.type):
        yield x
        return
    with torch.autocast(x.device.type, enabled=False):
        yield x.float()
