"""The CIFAR-10 CNN of the DGL paper's auxiliary-network and buffer studies
(Belilovsky, Eickenberg, Oyallon, arXiv 1901.08164, Sec. 4.1)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from beyond_backprop.models.layers import at_least_one, check, image_shape, kaiming_init
from beyond_backprop.models.registry import register_architecture
from beyond_backprop.models.stack import BlockStack


@register_architecture("cifar_cnn", "DGL's 6-layer 128-wide CIFAR CNN (1901.08164, Sec. 4.1)")
@dataclass(frozen=True)
class CifarCNNConfig:
    """The ``depth``-layer CNN of DGL's CIFAR-10 studies (arXiv 1901.08164, Sec. 4.1; the
    shape of the authors' ``auxiliary_nets_study/models.py``, class ``Net``, at its defaults
    ``depth=6, feature_size=128, downsample=[1, 3]``).

    Every conv block is ``Conv3x3 -> [BatchNorm] -> ReLU``; the first has ``width`` channels,
    and each block listed in ``downsample`` starts with a 2x2 max-pool and doubles the
    channels: 128, 256, 256, 512, 512, 512 channels at 32, 16, 16, 8, 8, 8 pixels for the
    defaults. The classifier block is the authors' last auxiliary network: average pooling to
    ``pool x pool``, ``mlp_layers`` layers ``Linear -> BatchNorm1d -> ReLU`` of ``fc_width``
    units, then ``Linear`` to the classes. In the paper that classifier belongs to the last
    conv layer's module; here it is a block of its own, and ``rule.blocks: [1, 2, 3, 4, 5]``
    joins it to the last conv block (the paper's six modules).

    Deviations: max-pools round up (``ceil_mode``: the same on CIFAR's even sizes, and odd
    sizes such as 7x7 keep their last row); convolutions use He initialisation
    (arXiv 1502.01852) and no bias where BatchNorm follows; the per-block auxiliary networks
    are the rule's (``rule.head``), not part of the architecture.
    """

    depth: int = 6
    """Conv layers (one block each)."""
    width: int = 128
    """Channels of the first conv layer (doubled at each downsampling block)."""
    downsample: tuple[int, ...] = (1, 3)
    """Blocks (0-based) that start with a 2x2 max-pool and double the channels."""
    batch_norm: bool = True
    """BatchNorm after every convolution and every hidden classifier layer."""
    pool: int = 2
    """The classifier averages the last feature map to ``pool x pool`` cells."""
    mlp_layers: int = 2
    """Hidden layers of the classifier (0: one linear layer)."""
    fc_width: int | None = None
    """Units of the classifier's hidden layers; null: as many as the pooled features
    (2048 at the defaults, as in the authors' code)."""

    @classmethod
    def debug(cls) -> CifarCNNConfig:
        """Three conv layers of 4, 8, 8 channels and a one-hidden-layer classifier."""
        return cls(depth=3, width=4, downsample=(1,), mlp_layers=1, fc_width=16)

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = at_least_one(self, ("depth", "width", "pool"))
        if self.mlp_layers < 0:
            found.append(("mlp_layers", f"{self.mlp_layers} is invalid: must be >= 0"))
        if self.fc_width is not None and self.fc_width < 1:
            found.append(("fc_width", f"{self.fc_width} is invalid: must be >= 1 or null"))
        ds = list(self.downsample)
        if ds != sorted(set(ds)) or any(not 1 <= k < self.depth for k in ds):
            found.append(
                (
                    "downsample",
                    f"{ds} is invalid: block indices must increase strictly within "
                    f"1..{self.depth - 1}",
                )
            )
        return found

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> BlockStack:
        """The conv blocks, then the classifier block."""
        check(self)
        in_ch = image_shape("cifar_cnn", input_shape)[0]
        out_ch = self.width
        blocks: list[nn.Module] = []
        for k in range(self.depth):
            layers: list[nn.Module] = []
            if k in self.downsample:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                out_ch *= 2
            layers.append(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=not self.batch_norm))
            layers += [nn.BatchNorm2d(out_ch)] if self.batch_norm else []
            blocks.append(nn.Sequential(*layers, nn.ReLU()))
            in_ch = out_ch
        features = in_ch * self.pool * self.pool
        hidden = self.fc_width or features
        top: list[nn.Module] = [nn.AdaptiveAvgPool2d(self.pool), nn.Flatten()]
        for _ in range(self.mlp_layers):
            top.append(nn.Linear(features, hidden))
            top += [nn.BatchNorm1d(hidden)] if self.batch_norm else []
            top.append(nn.ReLU())
            features = hidden
        top.append(nn.Linear(features, num_classes))
        blocks.append(nn.Sequential(*top))
        kaiming_init(nn.ModuleList(blocks))
        return BlockStack(blocks, input_shape)
