"""The modules self-supervised rules put beside a block: projection heads (SimCLR, LoCo) and
patch predictors (CPC / Greedy InfoMax)."""

from __future__ import annotations

import math

from torch import Tensor, nn


class ProjectionHead(nn.Module):
    """``[decoder convs] -> global average pool -> Linear -> ReLU -> Linear``.

    SimCLR's nonlinear projection head g (arXiv 2002.05709, Sec. 2.1) on a block's output; for
    image features (C, H, W) the head first average-pools over space, as SimCLR does on the
    ResNet's pooled output. ``decoder_depth`` extra ``Conv3x3 -> BatchNorm -> ReLU`` layers
    before the pooling give LoCo's deeper decoder (arXiv 2008.01342, Sec. 3.3).

    Args:
        in_shape: the block's output shape, without the batch dimension.
        hidden: width of the MLP's hidden layer.
        out: dimension of the projection fed to the loss.
        decoder_depth: number of conv layers before the pooling (image features only).
    """

    def __init__(
        self, in_shape: tuple[int, ...], hidden: int, out: int, decoder_depth: int = 0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if len(in_shape) == 3:
            channels = in_shape[0]
            for _ in range(decoder_depth):
                layers += [
                    nn.Conv2d(channels, channels, 3, padding=1),
                    nn.BatchNorm2d(channels),
                    nn.ReLU(),
                ]
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            width = channels
        elif decoder_depth:
            raise ValueError(f"a deeper decoder needs image features (C, H, W), got {in_shape}")
        else:
            layers.append(nn.Flatten())
            width = math.prod(in_shape)
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, out)]
        self.net = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        """The projection ``z = g(h)``, shape ``(B, out)``."""
        return self.net(h)


class PatchPredictors(nn.Module):
    """One bilinear map ``W_k`` per prediction offset ``k = 1 .. K``: the score of a context
    ``c`` and a target ``z`` is ``z . W_k c`` (CPC, arXiv 1807.03748, Eq. 3)."""

    def __init__(self, dim: int, offsets: int) -> None:
        super().__init__()
        self.maps = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(offsets))

    def forward(self, c: Tensor) -> list[Tensor]:
        """``[W_1 c, ..., W_K c]``."""
        return [w(c) for w in self.maps]
