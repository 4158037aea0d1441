from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from beyond_backprop.data.config import DataConfig
from beyond_backprop.data.fashion_mnist import (
    FASHION_MNIST_DIR,
    load_fashion_mnist,
    parse_idx,
    read_idx,
)
from beyond_backprop.errors import DataError


def idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_fashion(root: Path, n_train: int = 12, n_test: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        (root / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(arr)))
    return arrays


def test_idx_reader_roundtrip(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "a-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(arr)))
    out = read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, arr)
    plain = tmp_path / "b-idx3-ubyte"
    plain.write_bytes(idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(plain), arr)


def test_idx_bad_magic_truncation_and_type() -> None:
    good = idx_bytes(np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"f\.gz is not an IDX file \(magic number 01000802\)"):
        parse_idx(b"\x01" + good[1:], "f.gz")
    with pytest.raises(DataError, match=r"promises 6 bytes .* but the file has 5"):
        parse_idx(good[:-1], "f.gz")
    with pytest.raises(DataError, match="element type 0x0d is not unsigned byte"):
        parse_idx(good[:2] + b"\x0d" + good[3:], "f.gz")


def test_corrupted_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match=r"cannot read IDX file .*x\.gz"):
        read_idx(path)


def test_loader_on_fabricated_files(tmp_path: Path) -> None:
    arrays = write_fashion(tmp_path)
    std = load_fashion_mnist(DataConfig(name="fashion_mnist", root=str(tmp_path), normalize=False))
    assert (len(std.train), len(std.test), std.input_shape) == (12, 6, (1, 28, 28))
    expected = arrays["train-images-idx3-ubyte"].astype(np.float32)[:, None] / 255
    np.testing.assert_allclose(std.train.x.numpy(), expected, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(std.test.y.numpy(), arrays["t10k-labels-idx1-ubyte"])
    val = load_fashion_mnist(
        DataConfig(name="fashion_mnist", root=str(tmp_path), split="validation", normalize=False)
    )
    assert (len(val.train), len(val.test), val.eval_split) == (10, 2, "validation")
    np.testing.assert_array_equal(val.test.y.numpy(), arrays["train-labels-idx1-ubyte"][10:])


def test_missing_file_says_how_to_install(tmp_path: Path) -> None:
    write_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz is missing.*apt-get install"):
        load_fashion_mnist(DataConfig(name="fashion_mnist", root=str(tmp_path)))


def test_label_count_mismatch(tmp_path: Path) -> None:
    write_fashion(tmp_path)
    labels = np.zeros(5, dtype=np.uint8)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(DataError, match="expected 12 labels"):
        load_fashion_mnist(DataConfig(name="fashion_mnist", root=str(tmp_path)))


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_installed_label_file_header() -> None:
    labels = read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [1000] * 10
