"""scikit-learn's bundled 8x8 handwritten digits (1797 images), for tiny real-data runs."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from beyond_backprop.data.base import DatasetSplits, TensorSplit
from beyond_backprop.data.config import DataConfig
from beyond_backprop.data.finish import finalize
from beyond_backprop.data.registry import register_dataset
from beyond_backprop.errors import DataError

DIGITS_TRAIN = 1437
"""Training examples; the other 360 are the test set."""
DIGITS_SPLIT_SEED = 0


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The digits as (x float (1797, 64) in 0..16, y int (1797,)): read straight from the CSV
    that scikit-learn bundles (fast: no sklearn import), else through ``load_digits``."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise DataError("the 'digits' dataset needs scikit-learn: pip install scikit-learn")
    bundled = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if bundled.is_file():
        with gzip.open(bundled, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",")
        if table.shape == (1797, 65):
            return table[:, :-1], table[:, -1].astype(np.int64)
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError(
            f"the 'digits' dataset needs a working scikit-learn ({exc}): pip install scikit-learn"
        ) from exc
    x, y = load_digits(return_X_y=True)
    return np.asarray(x), np.asarray(y)


def load_digits_dataset(cfg: DataConfig) -> DatasetSplits:
    """scikit-learn digits, 8x8 (1437 train / 360 test, fixed shuffle)."""
    x, y = digits_arrays()
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(y))
    images = torch.from_numpy((x[order] / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8)
    labels = torch.from_numpy(y[order].astype(np.int64))
    train = TensorSplit(images[:DIGITS_TRAIN], labels[:DIGITS_TRAIN])
    test = TensorSplit(images[DIGITS_TRAIN:], labels[DIGITS_TRAIN:])
    return finalize("digits", train, test, 10, cfg)


register_dataset("digits")(load_digits_dataset)
