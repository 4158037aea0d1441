"""Colour operations on RGB image batches ``(B, 3, H, W)``, each linear in the pixel values and
one factor per image: the saturation, hue and greyscale parts of SimCLR's colour distortion
(Chen et al., arXiv 2002.05709, Appendix A).

Deviations: torchvision (the paper's pseudo-code) shifts hue in HSV space, which needs pixels in
[0, 1]; here hue turns the colour about the grey axis (1, 1, 1), the linear analogue of that
shift (HSV's hue is the angle about the same axis, measured on a hexagon instead of a circle).
Linear ops work the same on standardised inputs, where "grey" is a pixel whose channels are
equal in standard-deviation units (the training set's mean colour is 0).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LUMA = (0.299, 0.587, 0.114)
"""ITU-R 601 luma weights of (R, G, B), as torchvision's ``rgb_to_grayscale``."""


def _check_rgb(x: Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"colour ops need RGB batches (B, 3, H, W), got {tuple(x.shape)}")


def grayscale(x: Tensor) -> Tensor:
    """Every channel replaced by the luma ``0.299 R + 0.587 G + 0.114 B``, shape kept."""
    _check_rgb(x)
    weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True).expand_as(x)


def adjust_saturation(x: Tensor, factor: Tensor | float) -> Tensor:
    """Blend each image with its greyscale: ``grey + factor * (x - grey)`` (0: grey, 1: the
    image, above 1: more saturated); ``factor`` a number or one per image ``(B,)``."""
    grey = grayscale(x)
    f = torch.as_tensor(factor, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
    return grey + f * (x - grey)


def rotate_hue(x: Tensor, turns: Tensor | float) -> Tensor:
    """Turn each pixel's colour about the grey axis by ``turns`` of a full circle (a number or
    one per image ``(B,)``; 0 and 1: unchanged, 0.5: the complementary hue). Grey pixels and
    the mean of the three channels are kept (Rodrigues' rotation about (1, 1, 1) / sqrt(3))."""
    _check_rgb(x)
    b = x.shape[0]
    angle = 2 * math.pi * torch.as_tensor(turns, dtype=x.dtype, device=x.device).reshape(-1)
    cos, sin = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1)
    k = 1 / math.sqrt(3)
    eye = torch.eye(3, dtype=x.dtype, device=x.device)
    cross = k * torch.tensor([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], dtype=x.dtype, device=x.device)
    outer = torch.full((3, 3), k * k, dtype=x.dtype, device=x.device)
    rotation = cos * eye + sin * cross + (1 - cos) * outer  # (B or 1, 3, 3)
    return torch.einsum("bij,bjhw->bihw", rotation.expand(b, 3, 3), x)
