"""The modules self-supervised rules put beside a block: projection heads (SimCLR, LoCo) and
patch predictors (CPC / Greedy InfoMax)."""

from __future__ import annotations

import math

from torch import Tensor, nn


class ProjectionHead(nn.Module):
    """``[decoder convs] -> global average pool -> Linear -> ReLU -> ... -> Linear``.

    SimCLR's nonlinear projection head g (arXiv 2002.05709, Sec. 2.1) on a block's output; for
    image features (C, H, W) the head first average-pools over space, as SimCLR does on the
    ResNet's pooled output. ``depth`` counts the Linear layers: 2 is SimCLR's head, 3 is
    SimCLRv2's deeper head (arXiv 2006.10029, Sec. 2), whose first layers are kept for
    fine-tuning (``trunk``). ``decoder_depth`` extra ``Conv3x3 -> BatchNorm -> ReLU`` layers
    before the pooling give LoCo's deeper decoder (arXiv 2008.01342, Sec. 3.3).

    Args:
        in_shape: the block's output shape, without the batch dimension.
        hidden: width of the MLP's hidden layers.
        out: dimension of the projection fed to the loss.
        decoder_depth: number of conv layers before the pooling (image features only).
        depth: number of Linear layers (>= 1), a ReLU between each two.
    """

    def __init__(
        self,
        in_shape: tuple[int, ...],
        hidden: int,
        out: int,
        decoder_depth: int = 0,
        depth: int = 2,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"a projection head needs depth >= 1, got {depth}")
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
        self.in_width, self.hidden, self.depth = width, hidden, depth
        self.mlp_start = len(layers)
        for _ in range(depth - 1):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, out))
        self.net = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        """The projection ``z = g(h)``, shape ``(B, out)``."""
        return self.net(h)

    def trunk(self, keep: int) -> nn.Sequential:
        """The head's own modules (shared, not copied) up to and including its ``keep``-th
        ``Linear -> ReLU``: 0 is the pooled (flattened) input, as SimCLR fine-tunes; 1 is
        SimCLRv2's "fine-tune from the first layer of the head". ``0 <= keep < depth``."""
        if not 0 <= keep < self.depth:
            raise ValueError(
                f"a head of depth {self.depth} can keep 0 to {self.depth - 1} layers, got {keep}"
            )
        return nn.Sequential(*list(self.net)[: self.mlp_start + 2 * keep])

    def trunk_width(self, keep: int) -> int:
        """The feature width that ``trunk(keep)`` outputs."""
        return self.in_width if keep == 0 else self.hidden


class PatchPredictors(nn.Module):
    """One bilinear map ``W_k`` per prediction offset ``k = 1 .. K``: the score of a context
    ``c`` and a target ``z`` is ``z . W_k c`` (CPC, arXiv 1807.03748, Eq. 3)."""

    def __init__(self, dim: int, offsets: int) -> None:
        super().__init__()
        self.maps = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(offsets))

    def forward(self, c: Tensor) -> list[Tensor]:
        """``[W_1 c, ..., W_K c]``."""
        return [w(c) for w in self.maps]
