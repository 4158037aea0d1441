"""The provably correct layerwise algorithm of Malach and Shalev-Shwartz (arXiv 1803.09522)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beyond_backprop.models.hierarchical import PatchLayer
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import BlockContext, LearningRule, LocalLoss, Objective, Wiring
from beyond_backprop.rules.registry import register_rule


@register_rule("provable", "layer by layer: a two-layer net per level, then k-means (1803.09522)")
class Provable(LearningRule):
    """Malach and Shalev-Shwartz, *A Provably Correct Algorithm for Deep Learning that Actually
    Works* (arXiv 1803.09522): train a deep CNN one layer at a time, "each step involves gradient
    updates for a two layer network followed by a simple clustering algorithm".

    For the layer of level k (a ``hierarchical`` block, :class:`PatchLayer`), with the layers
    below frozen:

    1. *fit* (``train.epochs`` epochs): gradient updates of the two-layer network
       ``head(relu(conv(patch)))`` that predicts the label from each non-overlapping patch of the
       level's input alone: the cross-entropy averaged over patches.
    2. *cluster* (``cluster_epochs`` epochs, not for the top layer): with the network fixed,
       k-means of the patches' predicted label distributions into ``clusters[k]`` centroids
       (seeded by farthest-point traversal on the first batch, then mini-batch updates: the
       objective is the sum over centroids of the mean squared distance of the patches assigned to
       it, so an SGD step of rate 1 without momentum moves a centroid onto its patches' mean).
       The layer then outputs each patch's centroid as a one-hot symbol: the next level's image.

    Under the generative model (``data/hierarchical_digits.py``) a patch determines the symbol
    above it, so patches of one symbol share one label distribution; the two-layer network learns
    it and, where distinct symbols have distinct label distributions, the clustering groups the
    patches by symbol, recovering the model level by level.
    Evaluation reports each layer's own prediction (its per-patch logits averaged over patches).

    Deviations: the paper's body (its exact network, loss and clustering step) could not be
    consulted here, only its abstract and introduction; the per-patch cross-entropy, the softmax
    outputs as the clustered representation, and online k-means within the engine's epochs are
    this library's reading of "gradient updates for a two layer network followed by a simple
    clustering algorithm". Centroids are fitted by the engine's optimizer (use SGD) rather than by a
    full-batch Lloyd iteration. The per-layer learning rate follows the run's schedule across all
    layers (use ``optim.schedule: constant``).
    """

    @dataclass(frozen=True)
    class Config:
        """Options of the layerwise algorithm."""

        cluster_epochs: int = 1
        """Epochs of k-means after each non-top layer's ``train.epochs`` epochs of fitting."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            if self.cluster_epochs < 1:
                return [("cluster_epochs", f"{self.cluster_epochs} is invalid: must be >= 1")]
            return []

    default_wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="none")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.layers: list[PatchLayer] = []
        self.fit_epochs: int | None = None

    def prepare(self, stack: BlockStack) -> list[str]:
        """Check the stack is a clustering ``hierarchical`` network and keep its layers."""
        layers = list(stack.blocks)
        bad = [k for k, b in enumerate(layers) if not isinstance(b, PatchLayer) or b.head is None]
        if bad:
            raise ValueError(
                f"rule 'provable' needs model.arch=hierarchical with quantize=true; blocks {bad} "
                "are not clustering patch layers"
            )
        self.layers = [b for b in layers if isinstance(b, PatchLayer)]
        return []

    # -- schedule: layer by layer, each fitted then clustered --------------------------------
    def total_epochs(self, epochs: int, num_blocks: int) -> int:
        """``epochs`` of fitting per layer, plus ``cluster_epochs`` below the top."""
        self.fit_epochs = epochs
        return num_blocks * epochs + (num_blocks - 1) * self.config.cluster_epochs

    def phase(self, epoch: int, num_blocks: int) -> tuple[int, str]:
        """(layer, "fit" | "cluster") trained in ``epoch``."""
        if self.fit_epochs is None:
            raise RuntimeError("Provable.total_epochs must be called before training")
        span = self.fit_epochs + self.config.cluster_epochs
        layer, offset = divmod(epoch, span)
        if layer >= num_blocks - 1:  # the top layer has no clustering phase
            return num_blocks - 1, "fit"
        return layer, "fit" if offset < self.fit_epochs else "cluster"

    def active_blocks(self, epoch: int, num_blocks: int) -> Sequence[int]:
        """One layer at a time; the layers below run frozen."""
        return [self.phase(epoch, num_blocks)[0]]

    # -- objectives --------------------------------------------------------------------------
    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """Per-patch cross-entropy (fit) or the k-means objective (cluster) of layer ``k``."""
        layer = self.layers[k]
        _, stage = self.phase(ctx.epoch, ctx.num_blocks)
        if stage == "fit":
            return LocalLoss({"ce": patch_cross_entropy(layer.scores(ctx.x_in), ctx.batch.y)})
        with torch.no_grad():  # k-means moves the centroids only; the two-layer net stays put
            points = layer.embed(ctx.x_in)
        return LocalLoss({"kmeans": kmeans_objective(layer, points)})

    def predictions(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], x: Tensor
    ) -> dict[int | None, Tensor]:
        """The network's logits and each layer's own (per-patch logits averaged)."""
        out: dict[int | None, Tensor] = {}
        h = x
        for k, block in enumerate(stack.blocks):
            assert isinstance(block, PatchLayer)
            out[k] = block.scores(h).mean(dim=(2, 3))
            h = block(h)
        out[None] = h
        return out


def patch_cross_entropy(scores: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy of every patch's logits (N, C, H, W) against its image's label, averaged."""
    n, _, h, w = scores.shape
    return F.cross_entropy(scores, y.view(n, 1, 1).expand(n, h, w))


def seed_centroids(points: Tensor, k: int) -> Tensor:
    """``k`` rows of ``points`` by farthest-point traversal from the first: one per well
    separated group when there are at least ``k`` groups."""
    chosen = [0]
    distance = torch.cdist(points, points[:1]).squeeze(1)
    for _ in range(1, k):
        nxt = int(distance.argmax())
        chosen.append(nxt)
        distance = torch.minimum(distance, torch.cdist(points, points[nxt : nxt + 1]).squeeze(1))
    return points[chosen].clone()


def kmeans_objective(layer: PatchLayer, points: Tensor) -> Tensor:
    """Sum over centroids of half the mean squared distance to the points nearest to it; its
    gradient for centroid j is (c_j - mean of its points). Seeds the centroids first if needed."""
    centroids = layer.centroids
    assert centroids is not None
    if not bool(layer.seeded):
        with torch.no_grad():
            centroids.copy_(seed_centroids(points, centroids.shape[0]))
            layer.seeded.fill_(True)
    index = layer.assign(points)
    counts = torch.bincount(index, minlength=centroids.shape[0]).clamp_min(1).to(points.dtype)
    squared = 0.5 * (points - centroids[index]).pow(2).sum(dim=1)
    return (squared / counts[index]).sum()
