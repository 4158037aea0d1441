"""The masked reconstruction loss of Context Encoders (Pathak et al. 2016, arXiv 1604.07379,
Sec. 3.2, Eq. 1): the squared error of the prediction on the hidden region only,
``L_rec = || M * (x - F((1 - M) * x)) ||^2``, here normalised to a weighted mean.

The authors' code (``train.lua``, option ``overlapPred``, ``overlapL2Weight = 10``) also
predicts a band of ``overlap`` pixels of visible context around the hole and weights its error
ten times, so that the prediction blends into its surroundings; ``reconstruction_weights``
builds that weighting for any mask (the band is the mask dilated by ``overlap`` pixels, less
the mask).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def reconstruction_weights(mask: Tensor, overlap: int = 0, overlap_weight: float = 10.0) -> Tensor:
    """Per-pixel weights ``(B, 1, H, W)`` of the reconstruction error for masks ``(B, H, W)``
    (True: hidden): 1 on the hidden pixels, ``overlap_weight`` on the visible pixels within
    ``overlap`` pixels of a hidden one (Chebyshev distance), 0 elsewhere.

    Examples:
        >>> import torch
        >>> mask = torch.zeros(1, 5, 5, dtype=torch.bool); mask[0, 2, 2] = True
        >>> reconstruction_weights(mask, overlap=1, overlap_weight=10.0)[0, 0, 1:4, 1:4]
        tensor([[10., 10., 10.],
                [10.,  1., 10.],
                [10., 10., 10.]])
    """
    hidden = mask.unsqueeze(1).float()
    if overlap == 0:
        return hidden
    dilated = F.max_pool2d(hidden, 2 * overlap + 1, stride=1, padding=overlap)
    return hidden + overlap_weight * (dilated - hidden)


def masked_l2(prediction: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean squared error ``sum(w * (prediction - target)^2) / (C * sum(w))`` over
    images ``(B, C, H, W)`` with per-pixel weights ``(B, 1, H, W)`` (``reconstruction_weights``):
    with no overlap band, the mean squared error per hidden pixel and channel.

    Examples:
        >>> import torch
        >>> target = torch.zeros(1, 1, 2, 2); prediction = torch.ones(1, 1, 2, 2)
        >>> weights = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
        >>> masked_l2(prediction, target, weights)
        tensor(1.)
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} vs target {tuple(target.shape)}")
    squared = (prediction - target).pow(2) * weights
    return squared.sum() / (weights.sum() * prediction.shape[1]).clamp_min(1e-12)
