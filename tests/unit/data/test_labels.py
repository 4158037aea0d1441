"""Labeled subsets: class-balanced, seeded by their own seed, rows of the split unchanged."""

from __future__ import annotations

import pytest
import torch

from beyond_backprop.data import TensorSplit
from beyond_backprop.data.labels import labeled_subset
from beyond_backprop.errors import DataError


def imbalanced(n: int = 600) -> TensorSplit:
    g = torch.Generator().manual_seed(1)
    y = torch.cat([torch.zeros(n // 2), torch.randint(1, 3, (n - n // 2,), generator=g)]).long()
    return TensorSplit(torch.arange(n, dtype=torch.float32).unsqueeze(1), y)


def test_the_same_number_per_class_rows_kept_whole_and_in_order() -> None:
    split = imbalanced()
    subset = labeled_subset(split, 0.1, 3, seed=0)
    assert len(subset) == 60
    assert torch.bincount(subset.y, minlength=3).tolist() == [20, 20, 20]
    rows = subset.x.flatten().long()
    assert torch.equal(split.y[rows], subset.y)  # each example keeps its own label
    assert torch.equal(rows, rows.sort().values) and len(rows.unique()) == len(rows)


def test_seeded_by_its_own_seed_only() -> None:
    split = imbalanced()
    first = labeled_subset(split, 0.05, 3, seed=4)
    torch.manual_seed(123)  # the global generator plays no part
    assert torch.equal(first.x, labeled_subset(split, 0.05, 3, seed=4).x)
    assert not torch.equal(first.x, labeled_subset(split, 0.05, 3, seed=5).x)


def test_tiny_fractions_keep_one_per_class_and_bad_ones_fail() -> None:
    assert len(labeled_subset(imbalanced(), 1e-6, 3)) == 3
    with pytest.raises(DataError, match="must be in"):
        labeled_subset(imbalanced(), 0.0, 3)
    with pytest.raises(DataError, match="class 1"):
        labeled_subset(imbalanced(), 1.0, 3)  # 200 asked of a class with about 150
