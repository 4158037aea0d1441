"""The masked reconstruction loss and its overlap weights against per-pixel references."""

from __future__ import annotations

import pytest
import torch

from beyond_backprop.losses.reconstruction import masked_l2, reconstruction_weights


def reference_weights(mask: torch.Tensor, overlap: int, overlap_weight: float) -> torch.Tensor:
    """1 on hidden pixels; overlap_weight on visible ones within `overlap` (Chebyshev) of one."""
    b, h, w = mask.shape
    out = torch.zeros(b, 1, h, w)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                if mask[n, i, j]:
                    out[n, 0, i, j] = 1.0
                    continue
                near = mask[
                    n, max(0, i - overlap) : i + overlap + 1, max(0, j - overlap) : j + overlap + 1
                ]
                if overlap > 0 and bool(near.any()):
                    out[n, 0, i, j] = overlap_weight
    return out


@pytest.mark.parametrize("overlap", [0, 1, 2])
def test_weights_match_the_reference(overlap: int) -> None:
    generator = torch.Generator().manual_seed(overlap)
    mask = torch.rand(3, 9, 7, generator=generator) < 0.1
    expected = reference_weights(mask, overlap, 10.0)
    assert torch.equal(reconstruction_weights(mask, overlap, 10.0), expected)


def test_masked_l2_is_the_weighted_mean_squared_error() -> None:
    generator = torch.Generator().manual_seed(0)
    prediction = torch.randn(2, 3, 5, 4, generator=generator, dtype=torch.float64)
    target = torch.randn(2, 3, 5, 4, generator=generator, dtype=torch.float64)
    mask = torch.rand(2, 5, 4, generator=generator) < 0.3
    weights = reconstruction_weights(mask, 1, 10.0).double()
    total, norm = 0.0, 0.0
    for b in range(2):
        for i in range(5):
            for j in range(4):
                w = float(weights[b, 0, i, j])
                norm += 3 * w
                for c in range(3):
                    total += w * float(prediction[b, c, i, j] - target[b, c, i, j]) ** 2
    assert masked_l2(prediction, target, weights).item() == pytest.approx(total / norm, rel=1e-12)


def test_pixels_outside_the_region_do_not_count() -> None:
    target = torch.zeros(1, 1, 4, 4)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 1:3, 1:3] = True
    prediction = torch.full((1, 1, 4, 4), 5.0)
    prediction[0, 0, 1:3, 1:3] = 2.0  # the hidden region's error is 2^2 everywhere
    assert masked_l2(prediction, target, reconstruction_weights(mask)).item() == 4.0
    with pytest.raises(ValueError, match="prediction"):
        masked_l2(prediction, target[:, :, :3], reconstruction_weights(mask))
