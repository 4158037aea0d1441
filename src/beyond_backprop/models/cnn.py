"""A small convolutional network, one conv stage per block."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from beyond_backprop.models.registry import register_architecture
from beyond_backprop.models.stack import BlockStack


@register_architecture("cnn", "small conv net: conv-BN-ReLU(-pool) blocks, an MLP classifier")
@dataclass(frozen=True)
class CNNConfig:
    """Blocks ``Conv3x3 -> [BatchNorm] -> ReLU [-> MaxPool2]``, then a classifier block
    ``Flatten -> Linear -> ReLU -> Linear`` (or a single ``Linear`` when ``fc_width`` is 0).

    The shape follows the small CNNs that the DGL (1901.08164) and DNI (1608.05343) papers use
    on MNIST/CIFAR: a few 3x3 conv layers with pooling, and a small fully connected top.
    """

    channels: tuple[int, ...] = (32, 64, 128)
    """Output channels of each conv block."""
    pool: tuple[bool, ...] = (True, True, False)
    """Whether each conv block ends with a 2x2 max-pool (same length as ``channels``)."""
    batch_norm: bool = True
    """BatchNorm2d after each convolution."""
    fc_width: int = 256
    """Width of the classifier's hidden layer; 0 for a linear classifier."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        if any(c < 1 for c in self.channels):
            found.append(
                ("channels", f"{list(self.channels)} is invalid: every count must be >= 1")
            )
        if len(self.pool) != len(self.channels):
            found.append(
                ("pool", f"{list(self.pool)} has {len(self.pool)} entries but channels has "
                 f"{len(self.channels)}: give one pool flag per conv block")
            )  # fmt: skip
        if self.fc_width < 0:
            found.append(("fc_width", f"{self.fc_width} is invalid: must be >= 0 (0: linear)"))
        return found

    @classmethod
    def debug(cls) -> CNNConfig:
        """Two tiny conv blocks and a linear classifier."""
        return cls(channels=(4, 8), pool=(True, True), fc_width=0)

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> BlockStack:
        """Conv blocks then the classifier block."""
        if len(self.pool) != len(self.channels):
            raise ValueError(
                f"model.pool has {len(self.pool)} entries but model.channels has "
                f"{len(self.channels)}: give one pool flag per conv block"
            )
        if len(input_shape) != 3:
            raise ValueError(f"cnn needs image inputs (C, H, W), got shape {input_shape}")
        in_ch, height, width = input_shape
        blocks: list[nn.Module] = []
        for out_ch, pool in zip(self.channels, self.pool, strict=True):
            layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, padding=1)]
            if self.batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.ReLU())
            if pool:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            blocks.append(nn.Sequential(*layers))
            in_ch = out_ch
        features = in_ch * height * width
        if self.fc_width:
            top = [
                nn.Linear(features, self.fc_width),
                nn.ReLU(),
                nn.Linear(self.fc_width, num_classes),
            ]
        else:
            top = [nn.Linear(features, num_classes)]
        blocks.append(nn.Sequential(nn.Flatten(), *top))
        return BlockStack(blocks, input_shape)
