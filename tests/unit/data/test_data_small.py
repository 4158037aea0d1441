"""digits, synthetic, the shared split logic and the package surface."""

from __future__ import annotations

import sys

import pytest
import torch

from beyond_backprop.data import DATASETS, DataConfig, TensorSplit, load_dataset
from beyond_backprop.data.finish import finalize
from beyond_backprop.data.synthetic import make_synthetic
from beyond_backprop.errors import DataError, UnknownNameError


def test_registered_names() -> None:
    assert {"mnist", "fashion_mnist", "cifar10", "digits", "synthetic"} <= set(DATASETS.names())
    with pytest.raises(UnknownNameError, match="did you mean 'mnist'"):
        load_dataset(DataConfig(name="mnsit"))


def test_digits_shapes_range_and_determinism() -> None:
    a = load_dataset(DataConfig(name="digits", normalize=False))
    b = load_dataset(DataConfig(name="digits", normalize=False))
    assert (len(a.train), len(a.test), a.input_shape, a.num_classes) == (1437, 360, (1, 8, 8), 10)
    assert float(a.train.x.min()) == 0.0 and float(a.train.x.max()) == 1.0
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert sorted(set(a.test.y.tolist())) == list(range(10))
    val = load_dataset(DataConfig(name="digits", split="validation"))
    assert (len(val.train), len(val.test)) == (1437 - 1437 // 6, 1437 // 6)


def test_digits_without_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(DataError, match="pip install scikit-learn"):
        load_dataset(DataConfig(name="digits"))


def test_synthetic_is_deterministic_balanced_and_learnable() -> None:
    a = load_dataset(DataConfig(name="synthetic", normalize=False))
    b = load_dataset(DataConfig(name="synthetic", normalize=False))
    assert (len(a.train), len(a.test), a.input_shape, a.num_classes) == (256, 128, (1, 8, 8), 4)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert a.train.x.dtype == torch.float32 and a.train.y.dtype == torch.int64
    assert a.train.y.bincount().tolist() == [64] * 4
    # nearest class mean is a linear classifier: if it scores > 90 %, a small MLP can too
    means = torch.stack([a.train.x[a.train.y == c].mean(0) for c in range(4)]).flatten(1)
    predicted = torch.cdist(a.test.x.flatten(1), means).argmin(1)
    accuracy = (predicted == a.test.y).float().mean().item()
    assert accuracy > 0.9
    other_train, _ = make_synthetic(seed=1)
    assert not torch.equal(other_train.x, a.train.x)


def _split(n: int, offset: float = 0.0) -> TensorSplit:
    x = torch.arange(n * 2, dtype=torch.float32).reshape(n, 2, 1, 1) + offset
    return TensorSplit(x, torch.arange(n) % 3)


def test_finalize_split_sizes_and_limits() -> None:
    train, val, test = _split(12), _split(4, 100.0), _split(5, 200.0)
    plain = DataConfig(normalize=False)
    std = finalize("t", train, test, 3, plain, val=val)
    assert (len(std.train), len(std.test), std.eval_split) == (16, 5, "test")
    assert torch.equal(std.train.x[12:], val.x)
    v = finalize("t", train, test, 3, DataConfig(split="validation", normalize=False), val=val)
    assert (len(v.train), len(v.test), v.eval_split) == (12, 4, "validation")
    assert torch.equal(v.test.x, val.x)
    held = finalize("t", train, test, 3, DataConfig(split="validation", normalize=False))
    assert (len(held.train), len(held.test)) == (10, 2)
    assert torch.equal(held.test.x, train.x[10:])
    held3 = finalize("t", train, test, 3, DataConfig(split="validation"), holdout=3)
    assert (len(held3.train), len(held3.test)) == (9, 3)
    limited = finalize(
        "t", train, test, 3, DataConfig(train_limit=5, test_limit=2, normalize=False)
    )
    assert (len(limited.train), len(limited.test)) == (5, 2)
    assert torch.equal(limited.train.x, train.x[:5])
    with pytest.raises(DataError, match=r"data\.train_limit must be a positive"):
        finalize("t", train, test, 3, DataConfig(train_limit=0))
    with pytest.raises(DataError, match="cannot hold out 12 of 12"):
        finalize("t", train, test, 3, DataConfig(split="validation"), holdout=12)


def test_finalize_normalizes_with_training_statistics() -> None:
    train, test = _split(12), _split(5, 200.0)
    out = finalize("t", train, test, 3, DataConfig(train_limit=6))
    per_channel = out.train.x.transpose(0, 1).reshape(2, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(2), atol=1e-5)
    assert torch.allclose(per_channel.std(1), torch.ones(2), atol=1e-5)
    mean, std = train.x[:6].mean(0), train.x[:6].std(0)
    assert torch.allclose(out.test.x, (test.x - mean) / std, atol=1e-5)
