"""A small seeded Gaussian-cluster classification set shaped like 8x8 images, for tests."""

from __future__ import annotations

import torch

from beyond_backprop.data.base import DatasetSplits, TensorSplit
from beyond_backprop.data.config import DataConfig
from beyond_backprop.data.finish import finalize
from beyond_backprop.data.registry import register_dataset

SYNTHETIC_SEED = 0
SYNTHETIC_CLASSES = 4


def make_synthetic(
    n_train: int = 256,
    n_test: int = 128,
    num_classes: int = SYNTHETIC_CLASSES,
    seed: int = SYNTHETIC_SEED,
    noise: float = 2.0,
) -> tuple[TensorSplit, TensorSplit]:
    """Balanced Gaussian clusters in 64 dimensions, as (N, 1, 8, 8) float32 images: class
    ``c`` is ``mean[c] + noise * N(0, I)`` with ``mean`` drawn from N(0, I), so the classes
    are far apart (about 11 units) compared with the noise and nearly linearly separable."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(num_classes, 64, generator=generator)

    def draw(n: int) -> TensorSplit:
        labels = torch.arange(n) % num_classes
        labels = labels[torch.randperm(n, generator=generator)]
        x = means[labels] + noise * torch.randn(n, 64, generator=generator)
        return TensorSplit(x.reshape(n, 1, 8, 8), labels)

    return draw(n_train), draw(n_test)


def load_synthetic(cfg: DataConfig) -> DatasetSplits:
    """Seeded Gaussian clusters, 8x8, 4 classes (256 train / 128 test)."""
    train, test = make_synthetic()
    return finalize("synthetic", train, test, SYNTHETIC_CLASSES, cfg)


register_dataset("synthetic")(load_synthetic)
