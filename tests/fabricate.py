"""Fabricated dataset files in their real formats, for tests that cannot fetch the real ones.

``write_cifar10_tarball(folder)`` writes a small ``cifar-10-python.tar.gz`` laid out like the
real one (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta``; each batch a
pickle of a dict with ``data`` uint8 (N, 3072), red then green then blue planes, and
``labels``), so any CIFAR-10 config can run with ``data.root`` pointing at it.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
               b"ship", b"truck"]  # fmt: skip

CifarContent = dict[str, tuple[np.ndarray, list[int]]]
"""Per batch file name: images uint8 (N, 3, 32, 32) and their labels."""


def cifar10_content(n_train: int = 64, n_test: int = 32, seed: int = 0) -> CifarContent:
    """Random images and labels: ``n_train`` spread over the five training batches (the
    first ones get one more when it does not divide), ``n_test`` in ``test_batch``."""
    rng = np.random.default_rng(seed)
    sizes = [len(part) for part in np.array_split(np.arange(n_train), 5)]
    names = [*CIFAR_TRAIN_BATCHES, "test_batch"]
    return {
        name: (
            rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
            rng.integers(0, 10, n).tolist(),
        )
        for name, n in zip(names, [*sizes, n_test], strict=True)
    }


def cifar10_batch_pickle(images: np.ndarray, labels: list[int], bytes_keys: bool = True) -> bytes:
    """One batch file. ``bytes_keys``: keys and strings as bytes, as Python 3 reads the real
    (Python 2) files with ``encoding="bytes"``; otherwise str keys with numpy 1's module names."""
    n = len(labels)
    if bytes_keys:
        obj: dict[object, object] = {
            b"batch_label": b"training batch",
            b"labels": labels,
            b"data": images.reshape(n, 3072),
            b"filenames": [b"img.png"] * n,
        }
        return pickle.dumps(obj, protocol=2)
    obj = {"batch_label": "batch", "labels": labels, "data": images.reshape(n, 3072)}
    return pickle.dumps(obj, protocol=2).replace(b"numpy._core.", b"numpy.core.")


def write_tarball(path: Path, files: dict[str, bytes]) -> Path:
    """A gzipped tarball holding ``files`` (member name -> content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def cifar10_files(content: CifarContent, bytes_keys: bool = True) -> dict[str, bytes]:
    """The members of ``cifar-10-python.tar.gz`` for ``content``."""
    files = {
        f"{CIFAR_FOLDER}/{name}": cifar10_batch_pickle(*batch, bytes_keys)
        for name, batch in content.items()
    }
    meta = {b"label_names": CIFAR_NAMES, b"num_cases_per_batch": 10000, b"num_vis": 3072}
    files[f"{CIFAR_FOLDER}/batches.meta"] = pickle.dumps(meta, protocol=2)
    return files


def write_cifar10_tarball(
    folder: Path, n_train: int = 64, n_test: int = 32, seed: int = 0, bytes_keys: bool = True
) -> tuple[Path, CifarContent]:
    """``folder/cifar-10-python.tar.gz`` with ``n_train`` training and ``n_test`` test images;
    returns its path and what it holds."""
    content = cifar10_content(n_train, n_test, seed)
    path = write_tarball(folder / "cifar-10-python.tar.gz", cifar10_files(content, bytes_keys))
    return path, content
