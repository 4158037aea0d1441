"""The real MNIST download (about 20 MB); opt in with BBP_TEST_MNIST=1."""

from __future__ import annotations

import os

import pytest
import torch

from beyond_backprop.data import DataConfig, load_dataset, mnist_raw_path

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(os.environ.get("BBP_TEST_MNIST") != "1", reason="set BBP_TEST_MNIST=1"),
]


def test_real_mnist_splits() -> None:
    assert mnist_raw_path().is_file()
    std = load_dataset(DataConfig(normalize=False))
    assert (len(std.train), len(std.test)) == (60000, 10000)
    assert std.train.x.shape[1:] == (1, 28, 28)
    assert float(std.train.x.min()) == 0.0 and float(std.train.x.max()) < 1.0
    assert std.train.y.bincount().tolist()[:2] == [5923, 6742]
    assert std.test.y.bincount().tolist()[:2] == [980, 1135]
    val = load_dataset(DataConfig(split="validation"))
    assert (len(val.train), len(val.test), val.eval_split) == (50000, 10000, "validation")
    assert torch.allclose(val.train.x.mean(), torch.tensor(0.0), atol=1e-4)
