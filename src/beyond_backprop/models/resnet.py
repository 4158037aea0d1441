"""Residual networks (He et al., arXiv 1512.03385): the CIFAR family (Sec. 4.2) and the
ImageNet family (Table 1), as stacks of residual blocks or stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

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

IMAGENET_STAGES: dict[int, tuple[Literal["basic", "bottleneck"], tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
"""Block type and residual blocks per stage of the ImageNet ResNets (Table 1)."""


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    # no conv bias: the BatchNorm right after it has its own shift
    return [
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
    ]


class ResidualBlock(nn.Module):
    """``relu(F(x) + shortcut(x))``: ``F`` is two 3x3 convolutions (``basic``) or
    1x1 -> 3x3 -> 1x1 with 4x as many output channels (``bottleneck``, Fig. 5), each with
    BatchNorm; the shortcut is the identity, or a 1x1 convolution with BatchNorm where the
    shape changes (option B, Sec. 3.3)."""

    def __init__(
        self, kind: Literal["basic", "bottleneck"], in_ch: int, channels: int, stride: int
    ) -> None:
        super().__init__()
        if kind == "basic":
            out_ch = channels
            layers = [
                *_conv_bn(in_ch, channels, 3, stride),
                nn.ReLU(),
                *_conv_bn(channels, channels, 3),
            ]
        else:
            out_ch = 4 * channels
            layers = [
                # the stride on the first 1x1 convolution, as in the paper's models (its
                # FLOPs in Table 1), not on the 3x3 one (torchvision's later "v1.5")
                *_conv_bn(in_ch, channels, 1, stride),
                nn.ReLU(),
                *_conv_bn(channels, channels, 3),
                nn.ReLU(),
                *_conv_bn(channels, out_ch, 1),
            ]
        self.residual = nn.Sequential(*layers)
        self.shortcut = (
            nn.Sequential(*_conv_bn(in_ch, out_ch, 1, stride))
            if stride != 1 or in_ch != out_ch
            else nn.Identity()
        )
        self.out_channels = out_ch

    def forward(self, x: Tensor) -> Tensor:
        """``relu(F(x) + shortcut(x))``."""
        return (self.residual(x) + self.shortcut(x)).relu()


@register_architecture("resnet", "ResNet (1512.03385): CIFAR 6n+2 or ImageNet 18/34/50/101/152")
@dataclass(frozen=True)
class ResNetConfig:
    """ResNets of He et al. (arXiv 1512.03385), the networks the greedy (arXiv 1812.11446) and
    DGL (arXiv 1901.08164) papers split into modules.

    ``family: cifar`` (Sec. 4.2): a 3x3 convolution with 16 channels, then 3 stages of
    n = (depth - 2) / 6 basic blocks with 16, 32, 64 channels (stride 2 at the first block of
    the 2nd and 3rd stage): ResNet-20/32/44/56/110. ``family: imagenet`` (Table 1): a 7x7
    stride-2 convolution with 64 channels and a 3x3 stride-2 max-pool, then 4 stages with
    64, 128, 256, 512 channels of basic blocks (18, 34) or bottleneck blocks (50, 101, 152).
    Both end with global average pooling and a linear classifier, so any input size works
    (28x28 digits, 32x32 CIFAR images, 224x224 crops).

    Blocks: ``granularity: block`` makes every residual block a block, ``stage`` every
    stage; the stem is joined to the first block and the pooled classifier is the last block,
    so a rule's ``blocks`` option or an engine's stage boundaries can split between any two
    residual blocks.

    Deviations: shortcuts are option B everywhere (identity, a 1x1 convolution + BatchNorm
    where the shape changes), also for the CIFAR family, where the paper uses option A
    (zero-padded identity): 2 752 more parameters at width 1 (+1% for ResNet-20, 0.27M);
    ``stem: small`` puts the CIFAR stem on an ImageNet family (the ResNet-18/50 on CIFAR of
    SimCLR, arXiv 2002.05709, Appendix B.9).
    """

    depth: int = 20
    """CIFAR: 6n+2 (20, 32, 44, 56, 110, ...); ImageNet: 18, 34, 50, 101 or 152."""
    family: Literal["cifar", "imagenet"] = "cifar"
    """Which of the paper's two designs ``depth`` refers to."""
    stem: Literal["auto", "small", "large"] = "auto"
    """``small``: a 3x3 stride-1 convolution; ``large``: 7x7 stride 2 and a max-pool;
    ``auto``: the family's own (small for cifar, large for imagenet)."""
    width: float = 1.0
    """Channel multiplier of every convolution (at least one channel)."""
    granularity: Literal["block", "stage"] = "block"
    """One block per residual block, or one per stage."""

    @classmethod
    def debug(cls) -> ResNetConfig:
        """ResNet-8 (one basic block per stage) with 4, 8, 16 channels."""
        return cls(depth=8, width=0.25)

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        if self.family == "cifar" and (self.depth < 8 or (self.depth - 2) % 6):
            found.append(("depth", f"{self.depth} is invalid: family cifar needs 6n+2 >= 8"))
        elif self.family == "imagenet" and self.depth not in IMAGENET_STAGES:
            valid = ", ".join(map(str, IMAGENET_STAGES))
            found.append(("depth", f"{self.depth} is invalid for family imagenet: one of {valid}"))
        elif self.family not in ("cifar", "imagenet"):
            found.append(("family", f"{self.family!r} is not one of 'cifar', 'imagenet'"))
        if self.stem not in ("auto", "small", "large"):
            found.append(("stem", f"{self.stem!r} is not one of 'auto', 'small', 'large'"))
        if not 0 < self.width <= MAX_WIDTH:
            found.append(("width", f"{self.width} is invalid: must be in (0, {MAX_WIDTH}]"))
        if self.granularity not in ("block", "stage"):
            found.append(("granularity", f"{self.granularity!r} is not one of 'block', 'stage'"))
        return found

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> BlockStack:
        """Stem + first residual block (or stage), the other ones, the classifier."""
        check(self)
        in_ch = image_shape("resnet", input_shape)[0]
        if self.family == "cifar":
            kind: Literal["basic", "bottleneck"] = "basic"
            counts: tuple[int, ...] = ((self.depth - 2) // 6,) * 3
            stage_channels: tuple[int, ...] = (16, 32, 64)
        else:
            kind, counts = IMAGENET_STAGES[self.depth]
            stage_channels = (64, 128, 256, 512)
        stem_ch = scaled(stage_channels[0], self.width)
        large = self.stem == "large" or (self.stem == "auto" and self.family == "imagenet")
        stem = nn.Sequential(
            *_conv_bn(in_ch, stem_ch, 7 if large else 3, 2 if large else 1),
            nn.ReLU(),
            *([nn.MaxPool2d(3, stride=2, padding=1)] if large else []),
        )
        stages: list[list[nn.Module]] = []
        in_ch = stem_ch
        for s, (count, channels) in enumerate(zip(counts, stage_channels, strict=True)):
            stage: list[nn.Module] = []
            for b in range(count):
                block = ResidualBlock(
                    kind, in_ch, scaled(channels, self.width), 2 if b == 0 and s else 1
                )
                in_ch = block.out_channels
                stage.append(block)
            stages.append(stage)
        units = (
            [nn.Sequential(*stage) for stage in stages]
            if self.granularity == "stage"
            else [block for stage in stages for block in stage]
        )
        blocks: list[nn.Module] = [nn.Sequential(stem, units[0]), *units[1:]]
        blocks.append(pooled_classifier(in_ch, num_classes))
        kaiming_init(nn.ModuleList(blocks))
        return BlockStack(blocks, input_shape)
