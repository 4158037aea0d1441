"""Fashion-MNIST from the IDX files of Debian's ``dataset-fashion-mnist`` package.

Fashion-MNIST is by Zalando Research (Han Xiao, Kashif Rasul, Roland Vollgraf), MIT licence.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from beyond_backprop.data.base import DatasetSplits, TensorSplit
from beyond_backprop.data.config import DataConfig
from beyond_backprop.data.finish import finalize
from beyond_backprop.data.registry import register_dataset
from beyond_backprop.errors import DataError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where ``apt-get install -y dataset-fashion-mnist`` puts the files."""
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_UBYTE = 0x08
_INSTALL_HINT = (
    "install it with `apt-get install -y dataset-fashion-mnist` or set data.root to a folder "
    "holding the four IDX files"
)


def parse_idx(raw: bytes, source: str) -> np.ndarray:
    """Decode the (decompressed) bytes of an unsigned-byte IDX file into a uint8 array."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(
            f"{source} is not an IDX file (magic number {raw[:4].hex()}); {_INSTALL_HINT}"
        )
    if raw[2] != _IDX_UBYTE:
        raise DataError(f"{source}: IDX element type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{source}: IDX header is truncated or has 0 dimensions; {_INSTALL_HINT}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != math.prod(dims):
        raise DataError(
            f"{source}: IDX header promises {math.prod(dims)} bytes of {dims} but the file has "
            f"{len(raw) - header}; the file is truncated or corrupted, {_INSTALL_HINT}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed when its name ends in ``.gz``) into a uint8 array."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read IDX file {path} ({exc}); {_INSTALL_HINT}") from exc
    return parse_idx(raw, str(path))


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"Fashion-MNIST file {root / stem}.gz is missing; {_INSTALL_HINT}")


def read_fashion_split(root: Path, part: str) -> TensorSplit:
    """The ``part`` ("train" or "test") split in ``root``: x float32 (N, 1, 28, 28) in [0, 1]."""
    images_path = _find(root, FASHION_FILES[f"{part}_images"])
    labels_path = _find(root, FASHION_FILES[f"{part}_labels"])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: expected (N, 28, 28) images, got {images.shape}")
    if labels.shape != (images.shape[0],):
        raise DataError(
            f"{labels_path}: expected {images.shape[0]} labels to match {images_path}, got "
            f"shape {labels.shape}"
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_path}: labels must be in 0..9, found {int(labels.max())}")
    x = torch.from_numpy(images.astype(np.float32)).div_(255.0).unsqueeze(1)
    return TensorSplit(x, torch.from_numpy(labels.astype(np.int64)))


def load_fashion_mnist(cfg: DataConfig) -> DatasetSplits:
    """Fashion-MNIST clothing images, 28x28 (60k train / 10k test; validation: 50k / 10k)."""
    root = Path(cfg.root).expanduser() if cfg.root else FASHION_MNIST_DIR
    train, test = read_fashion_split(root, "train"), read_fashion_split(root, "test")
    return finalize("fashion_mnist", train, test, 10, cfg)


register_dataset("fashion_mnist")(load_fashion_mnist)
