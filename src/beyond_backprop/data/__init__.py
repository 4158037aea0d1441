"""Datasets held in memory as tensors: MNIST, Fashion-MNIST, CIFAR-10, digits, synthetic.

Importing this package registers every loader in ``DATASETS``.
"""

from __future__ import annotations

import beyond_backprop.data.hierarchical_digits  # noqa: F401  (registers its datasets)
from beyond_backprop.data import cifar10, digits, fashion_mnist, mnist, synthetic
from beyond_backprop.data.augment import AugmentConfig, augment_batch, augment_generator
from beyond_backprop.data.base import (
    DatasetSplits,
    TensorSplit,
    batches_per_epoch,
    epoch_order,
    iter_batches,
)
from beyond_backprop.data.config import DataConfig
from beyond_backprop.data.mnist import mnist_raw_path
from beyond_backprop.data.registry import DATASETS, register_dataset

__all__ = [
    "DATASETS",
    "AugmentConfig",
    "DataConfig",
    "DatasetSplits",
    "TensorSplit",
    "augment_batch",
    "augment_generator",
    "batches_per_epoch",
    "cifar10",
    "digits",
    "epoch_order",
    "fashion_mnist",
    "iter_batches",
    "load_dataset",
    "mnist",
    "mnist_raw_path",
    "register_dataset",
    "synthetic",
]


def load_dataset(cfg: DataConfig) -> DatasetSplits:
    """Load the dataset ``cfg.name`` as ``cfg`` asks (split, limits, normalisation)."""
    return DATASETS.get(cfg.name)(cfg)
