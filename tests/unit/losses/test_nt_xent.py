"""NT-Xent equals a hand-written per-anchor reference over several sizes and temperatures."""

from __future__ import annotations

import math

import pytest
import torch

from beyond_backprop.losses import nt_xent


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """SimCLR Eq. 1, one anchor at a time, in float64 Python arithmetic."""
    z = torch.cat([z1, z2]).double()
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2

        def sim(a: int, b: int) -> float:
            return float(z[a] @ z[b] / (z[a].norm() * z[b].norm()))

        denominator = sum(math.exp(sim(i, k) / t) for k in range(n2) if k != i)
        total += -math.log(math.exp(sim(i, j) / t) / denominator)
    return total / n2


@pytest.mark.parametrize("n, d", [(2, 3), (5, 8), (16, 4)])
@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_nt_xent_equals_reference(n: int, d: int, t: float) -> None:
    z1, z2 = torch.randn(n, d, dtype=torch.float64), torch.randn(n, d, dtype=torch.float64)
    assert nt_xent(z1, z2, t).item() == pytest.approx(reference_nt_xent(z1, z2, t), rel=1e-10)


def test_nt_xent_is_symmetric_in_the_views_and_scale_invariant() -> None:
    z1, z2 = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    loss = nt_xent(z1, z2, 0.3)
    assert torch.allclose(loss, nt_xent(z2, z1, 0.3))
    assert torch.allclose(loss, nt_xent(3 * z1, 0.5 * z2, 0.3))


def test_nt_xent_prefers_aligned_pairs() -> None:
    z = torch.randn(8, 16)
    assert nt_xent(z, z, 0.5) < nt_xent(z, z.roll(1, dims=0), 0.5)


def test_nt_xent_rejects_mismatched_batches() -> None:
    with pytest.raises(ValueError, match="equal shape"):
        nt_xent(torch.randn(4, 3), torch.randn(5, 3))
