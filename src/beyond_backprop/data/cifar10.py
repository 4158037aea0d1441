"""CIFAR-10 from its "python version" batches (``cifar-10-batches-py``), given by ``data.root``.

CIFAR-10 is by Alex Krizhevsky, Vinod Nair and Geoffrey Hinton (Krizhevsky, "Learning Multiple
Layers of Features from Tiny Images", University of Toronto technical report, 2009).
"""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

import numpy as np
import torch

from beyond_backprop.data.base import DatasetSplits, TensorSplit
from beyond_backprop.data.cache import cache_dir, sha256_file, write_cache_file
from beyond_backprop.data.config import DataConfig
from beyond_backprop.data.finish import finalize
from beyond_backprop.data.registry import register_dataset
from beyond_backprop.data.safe_pickle import NUMPY_ARRAY_GLOBALS, restricted_loads
from beyond_backprop.errors import DataError

logger = logging.getLogger(__name__)

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TARBALL = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
BATCH_FILES = (*TRAIN_BATCHES, "test_batch")
_OPTIONAL_FILES = ("batches.meta",)
CIFAR_GLOBALS = NUMPY_ARRAY_GLOBALS | {("_codecs", "encode")}
"""What a CIFAR-10 batch pickle needs: numpy arrays and, for Python 3 bytes, ``_codecs.encode``."""
_MAX_MEMBER_BYTES = 256 << 20
_LAYOUT_HINT = (
    f"data.root must be the {CIFAR_FOLDER} folder (data_batch_1..5, test_batch), its parent, "
    f"or {CIFAR_TARBALL}"
)


def _is_batch_folder(path: Path) -> bool:
    return any((path / name).exists() for name in BATCH_FILES)


def resolve_cifar_dir(root: str | None) -> Path:
    """The ``cifar-10-batches-py`` folder for ``data.root``: the folder itself, its parent, or a
    tarball (whose batch files are extracted into the cache)."""
    if not root:
        raise DataError(
            "CIFAR-10 cannot be downloaded here; set data.root to the cifar-10-batches-py "
            f"folder or {CIFAR_TARBALL} (the CIFAR-10 python version)"
        )
    path = Path(root).expanduser()
    if path.is_file():
        return extract_cifar_tarball(path)
    if not path.is_dir():
        raise DataError(f"CIFAR-10 root {path} does not exist; {_LAYOUT_HINT}")
    if _is_batch_folder(path):
        return path
    if (path / CIFAR_FOLDER).is_dir():
        return path / CIFAR_FOLDER
    if (path / CIFAR_TARBALL).is_file():
        return extract_cifar_tarball(path / CIFAR_TARBALL)
    raise DataError(f"CIFAR-10 root {path} holds no {CIFAR_FOLDER} files; {_LAYOUT_HINT}")


def extract_cifar_tarball(tarball: Path) -> Path:
    """Extract only the expected batch files of ``tarball`` into the cache and return their
    folder; member names are matched exactly, so nothing can land outside it."""
    try:
        digest = sha256_file(tarball)
    except OSError as exc:
        raise DataError(f"cannot read CIFAR-10 tarball {tarball} ({exc})") from exc
    dest = cache_dir() / "cifar10" / digest[:16] / CIFAR_FOLDER
    if all((dest / name).is_file() for name in BATCH_FILES):
        return dest
    wanted = {f"{CIFAR_FOLDER}/{name}": name for name in (*BATCH_FILES, *_OPTIONAL_FILES)}
    found: set[str] = set()
    try:
        with tarfile.open(tarball, "r:*") as archive:
            for member in archive:
                name = wanted.get(member.name.removeprefix("./"))
                if name is None or name in found:
                    continue
                if not member.isreg() or member.size > _MAX_MEMBER_BYTES:
                    raise DataError(f"{tarball}: member {member.name} is not a regular batch file")
                handle = archive.extractfile(member)
                if handle is None:
                    raise DataError(f"{tarball}: member {member.name} cannot be read")
                write_cache_file(dest / name, handle.read())
                found.add(name)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{tarball} is not a readable tarball ({exc}); {_LAYOUT_HINT}") from exc
    missing = [name for name in BATCH_FILES if name not in found]
    if missing:
        raise DataError(f"{tarball} lacks {CIFAR_FOLDER}/{missing[0]}; {_LAYOUT_HINT}")
    logger.info("extracted CIFAR-10 batches to %s", dest)
    return dest


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as (data uint8 (N, 3072), labels int64 (N,)), after checking its format."""
    if not path.is_file():
        raise DataError(f"CIFAR-10 file {path} is missing; {_LAYOUT_HINT}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read CIFAR-10 file {path} ({exc})") from exc
    obj = restricted_loads(raw, CIFAR_GLOBALS, source=str(path), encoding="latin1")
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR-10 file {path} does not hold a dict; {_LAYOUT_HINT}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    data = batch.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DataError(f"CIFAR-10 file {path}: 'data' is missing or not a uint8 (N, 3072) array")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"CIFAR-10 file {path}: 'data' has shape {data.shape}, not (N, 3072)")
    if "labels" not in batch:
        raise DataError(f"CIFAR-10 file {path} has no 'labels'")
    labels = np.asarray(batch["labels"])
    if labels.shape != (data.shape[0],) or (labels.size and labels.dtype.kind not in "iu"):
        raise DataError(f"CIFAR-10 file {path}: 'labels' must be {data.shape[0]} integers")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"CIFAR-10 file {path}: labels must be in 0..9")
    return data, labels.astype(np.int64)


def _to_split(parts: list[tuple[np.ndarray, np.ndarray]]) -> TensorSplit:
    data = np.concatenate([d for d, _ in parts])
    labels = np.concatenate([y for _, y in parts])
    x = torch.from_numpy(data.astype(np.float32)).div_(255.0).reshape(-1, 3, 32, 32)
    return TensorSplit(x, torch.from_numpy(labels))


def load_cifar10(cfg: DataConfig) -> DatasetSplits:
    """CIFAR-10 colour images, 32x32 (50k train / 10k test; validation: data_batch_5)."""
    folder = resolve_cifar_dir(cfg.root)
    train_parts = [read_cifar_batch(folder / name) for name in TRAIN_BATCHES]
    train = _to_split(train_parts)
    test = _to_split([read_cifar_batch(folder / "test_batch")])
    return finalize("cifar10", train, test, 10, cfg, holdout=len(train_parts[-1][1]))


register_dataset("cifar10")(load_cifar10)
