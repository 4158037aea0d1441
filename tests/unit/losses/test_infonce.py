"""InfoNCE and its patch-grid form equal hand-written references (full and sampled negatives)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from beyond_backprop.losses import grid_info_nce, info_nce
from beyond_backprop.losses.infonce import sample_negatives


def reference_info_nce(p: torch.Tensor, t: torch.Tensor, candidates: list[list[int]]) -> float:
    """CPC Eq. 4 one prediction at a time: candidates[i] lists the targets scored (the
    positive i first)."""
    total = 0.0
    for i, rows in enumerate(candidates):
        scores = [float(p[i].double() @ t[j].double()) for j in rows]
        top = max(scores)
        log_sum = top + math.log(sum(math.exp(s - top) for s in scores))
        total += log_sum - scores[0]
    return total / len(candidates)


@pytest.mark.parametrize("n, d", [(2, 3), (7, 5), (20, 16)])
@pytest.mark.parametrize("scale", [0.1, 1.0, 4.0])
def test_info_nce_equals_reference(n: int, d: int, scale: float) -> None:
    p, t = scale * torch.randn(n, d, dtype=torch.float64), torch.randn(n, d, dtype=torch.float64)
    everyone = [[i, *(j for j in range(n) if j != i)] for i in range(n)]
    assert info_nce(p, t).item() == pytest.approx(reference_info_nce(p, t, everyone), rel=1e-10)


@pytest.mark.parametrize("n, m", [(3, 1), (10, 4), (12, 30)])
def test_sampled_info_nce_equals_reference_on_the_same_draws(n: int, m: int) -> None:
    p, t = torch.randn(n, 6, dtype=torch.float64), torch.randn(n, 6, dtype=torch.float64)
    torch.manual_seed(3)
    loss = info_nce(p, t, negatives=m)
    torch.manual_seed(3)
    drawn = sample_negatives(n, m)
    candidates = [[i, *drawn[i].tolist()] for i in range(n)]
    assert all(i not in drawn[i].tolist() for i in range(n))  # never the positive
    assert loss.item() == pytest.approx(reference_info_nce(p, t, candidates), rel=1e-10)


def test_grid_info_nce_equals_reference_on_enumerated_patches() -> None:
    b, d, rows, cols = 2, 4, 4, 3
    z = torch.randn(b, d, rows, cols, dtype=torch.float64)
    maps = [nn.Linear(d, d, bias=False).double() for _ in range(2)]
    terms = grid_info_nce(z, maps)
    assert sorted(terms) == ["infonce_k1", "infonce_k2"]
    for k, w in enumerate(maps, start=1):
        # every (image, row, col) with a patch k rows below, in any fixed order
        cells = [(i, r, c) for i in range(b) for r in range(rows - k) for c in range(cols)]
        with torch.no_grad():
            p = torch.stack([w(z[i, :, r, c]) for i, r, c in cells])
        t = torch.stack([z[i, :, r + k, c] for i, r, c in cells])
        everyone = [[i, *(j for j in range(len(cells)) if j != i)] for i in range(len(cells))]
        expected = reference_info_nce(p, t, everyone)
        assert terms[f"infonce_k{k}"].item() == pytest.approx(expected, rel=1e-10)


def test_grid_info_nce_rejects_offsets_beyond_the_grid() -> None:
    with pytest.raises(ValueError, match="offsets"):
        grid_info_nce(torch.randn(1, 2, 2, 2), [nn.Identity(), nn.Identity()])
