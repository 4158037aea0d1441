"""VGG networks (Simonyan and Zisserman, arXiv 1409.1556), as stacks of blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from beyond_backprop.models.layers import (
    MAX_WIDTH,
    check,
    image_shape,
    kaiming_init,
    pooled_classifier,
    scaled,
)
from beyond_backprop.models.registry import register_architecture
from beyond_backprop.models.stack import BlockStack

STAGE_CHANNELS = (64, 128, 256, 512, 512)
"""Output channels of the five conv stages (arXiv 1409.1556, Table 1)."""
LAYERS_PER_STAGE: dict[int, tuple[int, ...]] = {
    11: (1, 1, 2, 2, 2),  # config A
    13: (2, 2, 2, 2, 2),  # config B
    16: (2, 2, 3, 3, 3),  # config D
    19: (2, 2, 4, 4, 4),  # config E
}
"""3x3 conv layers in each stage, per depth (Table 1's columns A, B, D, E)."""


@register_architecture("vgg", "VGG-11/13/16/19 (1409.1556), optional BatchNorm, CIFAR or ImageNet")
@dataclass(frozen=True)
class VGGConfig:
    """VGG-11/13/16/19: configs A, B, D and E of Simonyan and Zisserman (arXiv 1409.1556,
    Table 1), the networks the greedy (arXiv 1812.11446, Sec. 4.2) and DGL (arXiv 1901.08164,
    Sec. 4.2) papers train block by block on CIFAR-10 and ImageNet.

    Five stages of 3x3 convolutions (padding 1) with 64, 128, 256, 512, 512 channels, each
    followed by ``[BatchNorm] -> ReLU``; every stage ends with a 2x2 max-pool. Blocks:
    ``granularity: stage`` makes one block per stage (its convolutions and its pool, the
    groups between Table 1's max-pools, 5 blocks); ``layer`` one block per convolution (a
    stage's pool goes with its last convolution; 8 to 16 blocks). The classifier is always
    the last block: ``head: cifar`` global average pooling and one linear layer (the usual
    CIFAR form, e.g. the DGL paper's VGG), ``head: imagenet`` the paper's three fully
    connected layers (``fc_width`` wide, ReLU, dropout 0.5) on the features average-pooled
    to 7x7.

    Deviations: the max-pools round up (``ceil_mode``), which changes nothing on the even
    sizes of CIFAR and ImageNet and lets 28x28 digits through all five pools
    (28-14-7-4-2-1); BatchNorm (not in the paper, which predates it) is on by default;
    He initialisation (arXiv 1502.01852) instead of the paper's staged training of
    deeper nets from shallower ones.
    """

    depth: Literal[11, 13, 16, 19] = 16
    """VGG-11, 13, 16 or 19 (Table 1's configs A, B, D, E)."""
    batch_norm: bool = True
    """BatchNorm2d after every convolution."""
    width: float = 1.0
    """Channel multiplier (0.5: half the channels of every convolution, at least one)."""
    head: Literal["cifar", "imagenet"] = "cifar"
    """``cifar``: global average pooling and one linear layer; ``imagenet``: the paper's
    FC-fc_width, FC-fc_width, FC-classes on 7x7 pooled features."""
    fc_width: int = 4096
    """Width of the two hidden fully connected layers of the ``imagenet`` head."""
    granularity: Literal["stage", "layer"] = "stage"
    """One block per conv stage, or one per conv layer."""

    @classmethod
    def debug(cls) -> VGGConfig:
        """VGG-11 at 1/16 of the channels (4 to 32)."""
        return cls(depth=11, width=1 / 16)

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        if self.depth not in LAYERS_PER_STAGE:
            found.append(("depth", f"{self.depth!r} is not one of 11, 13, 16, 19"))
        if not 0 < self.width <= MAX_WIDTH:
            found.append(("width", f"{self.width} is invalid: must be in (0, {MAX_WIDTH}]"))
        if self.fc_width < 1:
            found.append(("fc_width", f"{self.fc_width} is invalid: must be >= 1"))
        if self.head not in ("cifar", "imagenet"):
            found.append(("head", f"{self.head!r} is not one of 'cifar', 'imagenet'"))
        if self.granularity not in ("stage", "layer"):
            found.append(("granularity", f"{self.granularity!r} is not one of 'stage', 'layer'"))
        return found

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> BlockStack:
        """The conv blocks, then the classifier block."""
        check(self)
        in_ch = image_shape("vgg", input_shape)[0]
        stages: list[list[nn.Sequential]] = []
        for count, channels in zip(LAYERS_PER_STAGE[self.depth], STAGE_CHANNELS, strict=True):
            layers = []
            for _ in range(count):
                out_ch = scaled(channels, self.width)
                norm = [nn.BatchNorm2d(out_ch)] if self.batch_norm else []
                layers.append(
                    nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), *norm, nn.ReLU())
                )
                in_ch = out_ch
            layers[-1].append(nn.MaxPool2d(2, ceil_mode=True))
            stages.append(layers)
        blocks: list[nn.Module] = (
            [nn.Sequential(*stage) for stage in stages]
            if self.granularity == "stage"
            else [layer for stage in stages for layer in stage]
        )
        blocks.append(self._classifier(in_ch, num_classes))
        kaiming_init(nn.ModuleList(blocks))
        return BlockStack(blocks, input_shape)

    def _classifier(self, channels: int, num_classes: int) -> nn.Sequential:
        if self.head == "cifar":
            return pooled_classifier(channels, num_classes)
        return nn.Sequential(
            nn.AdaptiveAvgPool2d(7),
            nn.Flatten(),
            nn.Linear(channels * 49, self.fc_width),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(self.fc_width, self.fc_width),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(self.fc_width, num_classes),
        )
