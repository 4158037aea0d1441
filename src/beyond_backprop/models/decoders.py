"""Decoders that reconstruct the input image from a block's output, for the reconstruction
rules (``inpaint``: Context Encoders, arXiv 1604.07379; ``pretext``: arXiv 2008.01064).

``ReconstructionDecoder`` predicts every pixel of the input image; the loss picks the region
(``losses/reconstruction.py``). For feature maps it follows the Context Encoder's design
(Sec. 3.1): a *channel-wise fully connected* layer lets every output position depend on the
whole feature map (a conv decoder alone would see only a neighbourhood, and the middle of a
large hole has no visible pixel nearby), then a 1x1 convolution mixes channels, a 3x3
convolution works at the pooled resolution, and a sub-pixel layer (1x1 convolution to
``C0 r^2`` channels, then pixel shuffle by r) paints the image: the up-sampling of the
paper's up-convolutions, at the cost of one small layer. For flat features it is an MLP.
``Critic`` is the optional adversarial discriminator of Sec. 3.2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ChannelwiseLinear(nn.Module):
    """A fully connected layer per channel, without connections between channels: ``(B, C, N)``
    -> ``(B, C, N)`` with ``C`` weight matrices of ``N x N`` (Context Encoders, Sec. 3.1:
    ``m n^4`` parameters instead of ``m^2 n^4`` for a full layer on m maps of n x n)."""

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(size)  # nn.Linear's default initialisation, per channel
        # cpu: parameters, moved with the module
        self.weight = nn.Parameter(torch.empty(channels, size, size).uniform_(-bound, bound))
        # cpu: as the weight
        self.bias = nn.Parameter(torch.empty(channels, size).uniform_(-bound, bound))

    def forward(self, h: Tensor) -> Tensor:
        """``out[b, c] = weight[c] @ h[b, c] + bias[c]``."""
        return torch.einsum("cij,bcj->bci", self.weight, h) + self.bias


class ReconstructionDecoder(nn.Module):
    """A block's output ``in_shape`` -> an image of ``out_shape`` ``(C0, H0, W0)``.

    Feature maps ``(C, H, W)``: average-pool to at most ``pool x pool`` cells (bounds the
    channel-wise layer's ``C (pool^2)^2`` weights), channel-wise fully connected, 1x1 conv to
    ``width`` channels, ReLU, 3x3 conv, ReLU, 1x1 conv to ``C0 r^2`` channels and pixel
    shuffle by ``r`` (the smallest factor that covers ``(H0, W0)``), resized to ``(H0, W0)``
    when the pooled grid times r overshoots it. Vectors ``(D,)``:
    ``Linear(D, width) -> ReLU -> Linear(width, C0 H0 W0)``.

    Args:
        in_shape: the block's output shape, without the batch dimension.
        out_shape: the image shape ``(C0, H0, W0)``.
        width: hidden channels (feature maps) or units (vectors).
        pool: the largest spatial size kept before the channel-wise layer.

    Examples:
        >>> import torch
        >>> decoder = ReconstructionDecoder((16, 14, 14), (1, 28, 28), width=8, pool=7)
        >>> decoder(torch.zeros(2, 16, 14, 14)).shape
        torch.Size([2, 1, 28, 28])
    """

    def __init__(
        self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], width: int, pool: int
    ) -> None:
        super().__init__()
        if len(out_shape) != 3:
            raise ValueError(f"a decoder paints images (C, H, W), got output shape {out_shape}")
        self.out_shape = tuple(out_shape)
        channels_out, height, width_out = out_shape
        self.net: nn.Module
        if len(in_shape) == 3:
            channels = in_shape[0]
            cells = (min(pool, in_shape[1]), min(pool, in_shape[2]))
            scale = max(math.ceil(height / cells[0]), math.ceil(width_out / cells[1]))
            self.net = nn.Sequential(
                nn.AdaptiveAvgPool2d(cells),
                nn.Flatten(2),
                ChannelwiseLinear(channels, cells[0] * cells[1]),
                nn.Unflatten(2, cells),
                nn.Conv2d(channels, width, 1),
                nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(width, channels_out * scale * scale, 1),
                nn.PixelShuffle(scale),
            )
        elif len(in_shape) == 1:
            self.net = nn.Sequential(
                nn.Linear(in_shape[0], width),
                nn.ReLU(),
                nn.Linear(width, math.prod(out_shape)),
                nn.Unflatten(1, self.out_shape),
            )
        else:
            raise ValueError(f"decoders take (C, H, W) or (D,) features, got shape {in_shape}")

    def forward(self, h: Tensor) -> Tensor:
        """The predicted image ``(B, C0, H0, W0)``."""
        image = self.net(h)
        if image.shape[2:] != self.out_shape[1:]:
            image = F.interpolate(image, size=self.out_shape[1:], mode="bilinear")
        return image


class Critic(nn.Module):
    """The adversarial discriminator D: an image ``(C, H, W)`` -> one logit (real vs
    predicted). Two stride-2 4x4 convolutions with LeakyReLU (the DCGAN-style layers of the
    Context Encoder's discriminator, fewer of them for small images), global average pooling,
    a linear layer. No BatchNorm: real and predicted images go through it in separate calls."""

    def __init__(self, image_shape: tuple[int, ...], width: int) -> None:
        super().__init__()
        channels = image_shape[0]
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * width, 1),
        )

    def forward(self, image: Tensor) -> Tensor:
        """Logits ``(B,)``: high for images the critic takes as real."""
        return self.net(image).squeeze(1)
