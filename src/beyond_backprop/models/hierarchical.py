"""The network of Malach and Shalev-Shwartz (arXiv 1803.09522): non-overlapping patch
convolutions, one per level of the hierarchical generative model, each followed by a per-patch
label predictor and (below the top) a clustering of the patches into symbols."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beyond_backprop.models.registry import register_architecture
from beyond_backprop.models.stack import BlockStack


class PatchLayer(nn.Module):
    """The two-layer network of one level: ``head(relu(conv(x)))``, where ``conv`` reads
    non-overlapping ``patch x patch`` patches (stride = kernel) and ``head`` (1x1) predicts the
    label from each patch alone.

    With ``clusters`` set, the layer's output is the next level's "image": each patch replaced by
    the one-hot index of the centroid nearest to its predicted label distribution
    (``embed``), i.e. the patch's symbol. Without, it is the label logits averaged over patches
    (the top layer). ``quantize=False`` makes a plain conv layer instead, ``relu(conv(x))``, for
    end-to-end baselines of the same shape.
    """

    seeded: Tensor

    def __init__(
        self,
        in_channels: int,
        width: int,
        patch: int | tuple[int, int],
        num_classes: int,
        clusters: int | None,
        quantize: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, patch, stride=patch)
        self.quantize = quantize or clusters is None
        self.head = nn.Conv2d(width, num_classes, 1) if self.quantize else None
        self.centroids = (
            nn.Parameter(
                # cpu: a parameter, moved with the module
                torch.zeros(clusters, num_classes)
            )
            if clusters is not None and quantize
            else None
        )
        # set once the centroids were seeded from data (checkpointed with the model)
        # cpu: a buffer, moved with the module
        self.register_buffer("seeded", torch.tensor(False))

    def scores(self, x: Tensor) -> Tensor:
        """Per-patch label logits (N, classes, H', W')."""
        if self.head is None:
            raise ValueError("a PatchLayer built with quantize=False has no label predictor")
        return self.head(F.relu(self.conv(x)))

    def embed(self, x: Tensor) -> Tensor:
        """Per-patch predicted label distributions, one row per patch: (N * H' * W', classes)."""
        return _rows(self.scores(x).softmax(dim=1))

    def assign(self, points: Tensor) -> Tensor:
        """Index of the nearest centroid for each row of ``points``."""
        assert self.centroids is not None
        return torch.cdist(points, self.centroids.detach()).argmin(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """Symbols as one-hot channels (clustering layer), logits (top) or features."""
        if not self.quantize:
            return F.relu(self.conv(x))
        if self.centroids is None:
            return self.scores(x).mean(dim=(2, 3))
        with torch.no_grad():  # a symbol is a discrete choice: nothing flows back through it
            scores = self.scores(x)
            n, _, h, w = scores.shape
            index = self.assign(_rows(scores.softmax(dim=1)))
            onehot = F.one_hot(index, self.centroids.shape[0]).to(x.dtype)
        return onehot.view(n, h, w, -1).permute(0, 3, 1, 2).contiguous()


def _rows(maps: Tensor) -> Tensor:
    """(N, C, H, W) maps as (N * H * W, C) rows, one per position."""
    return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])


@register_architecture(
    "hierarchical", "patch convolutions with per-patch clustering (1803.09522's network)"
)
@dataclass(frozen=True)
class HierarchicalConfig:
    """``len(clusters) + 1`` blocks of :class:`PatchLayer`: each clustering block maps its input
    to a grid of ``clusters[k]`` symbols ``patch`` times smaller; the top block averages its
    per-patch label logits over the remaining grid."""

    width: int = 64
    """Hidden channels of each layer's two-layer network."""
    patch: int = 3
    """Side of the non-overlapping patches each layer reads (kernel = stride)."""
    clusters: tuple[int, ...] = (16, 16)
    """Symbols (k-means centroids) of each block below the top."""
    quantize: bool = True
    """False: plain ``relu(conv)`` blocks below the top, the same shapes without clustering (an
    end-to-end trainable baseline)."""
    top_global: bool = False
    """The top block reads the whole remaining grid as one patch (for inputs that are not
    ``patch**blocks`` wide, e.g. MNIST); False: ``patch x patch`` patches, logits averaged."""

    @classmethod
    def debug(cls) -> HierarchicalConfig:
        """One tiny clustering block and the top block."""
        return cls(width=8, patch=2, clusters=(4,))

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> BlockStack:
        """The clustering blocks then the top block."""
        if len(input_shape) != 3:
            raise ValueError(f"hierarchical needs image inputs (C, H, W), got {input_shape}")
        blocks: list[nn.Module] = []
        channels = input_shape[0]
        for k in self.clusters:
            blocks.append(
                PatchLayer(channels, self.width, self.patch, num_classes, k, self.quantize)
            )
            channels = k if self.quantize else self.width
        # non-overlapping patches: each clustering block divides the grid by ``patch`` (floor)
        height, width = (side // self.patch ** len(self.clusters) for side in input_shape[1:])
        top = (height, width) if self.top_global else self.patch
        blocks.append(PatchLayer(channels, self.width, top, num_classes, None))
        return BlockStack(blocks, input_shape)
