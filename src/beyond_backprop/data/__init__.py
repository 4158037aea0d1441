"""Datasets held in memory as tensors: MNIST, Fashion-MNIST, CIFAR-10, digits, synthetic.

Importing this package registers every loader in ``DATASETS``.
"""

from __future__ import annotations

import beyond_backprop.data.hierarchical_digits  # noqa: F401  (registers its datasets)
from beyond_backprop.data import cifar10, digits, fashion_mnist, mnist, synthetic
from beyond_backprop.data.base import (
    DATASETS,
    DatasetSplits,
    TensorSplit,
    batches_per_epoch,
    epoch_order,
    iter_batches,
)
from beyond_backprop.data.config import DataConfig
from beyond_backprop.data.mnist import mnist_raw_path

__all__ = [
    "DATASETS",
    "DataConfig",
    "DatasetSplits",
    "TensorSplit",
    "batches_per_epoch",
    "cifar10",
    "digits",
    "epoch_order",
    "fashion_mnist",
    "iter_batches",
    "load_dataset",
    "mnist",
    "mnist_raw_path",
    "synthetic",
]


def load_dataset(cfg: DataConfig) -> DatasetSplits:
    """Load the dataset ``cfg.name`` as ``cfg`` asks (split, limits, normalisation)."""
    return DATASETS.get(cfg.name)(cfg)
