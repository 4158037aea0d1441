"""Shared fixtures for the data tests: an isolated cache directory, fabricated files."""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "network: needs network access (real MNIST; run with BBP_TEST_MNIST=1)"
    )


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every data test gets its own empty cache and no user MNIST file."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("BBP_CACHE_DIR", str(cache))
    monkeypatch.delenv("BBP_MNIST_FILE", raising=False)
    return cache


def py2_style(data: bytes) -> bytes:
    """A protocol 2 or 3 pickle (GLOBAL opcodes) written by numpy 2, given numpy 1's module names
    like the real MNIST file (protocol 3 keeps bytes free of ``_codecs.encode``)."""
    return data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def fake_mnist_parts(sizes: tuple[int, int, int] = (6, 3, 4)) -> list[tuple[np.ndarray, ...]]:
    """(x float32 (N, 784) in [0, 1), y int64) triples shaped like the real pickle."""
    rng = np.random.default_rng(1)
    return [
        (rng.integers(0, 256, (n, 784)).astype(np.float32) / 256, rng.integers(0, 10, n))
        for n in sizes
    ]


def fake_mnist_gz(parts: list[tuple[np.ndarray, ...]] | None = None) -> bytes:
    """gzip of a pickle shaped like ``mnist/data/mnist.pkl.gz``."""
    obj = tuple(tuple(p) for p in (parts if parts is not None else fake_mnist_parts()))
    return gzip.compress(py2_style(pickle.dumps(obj, protocol=3)), mtime=0)


def make_wheel(
    path: Path, member_data: bytes | None, member: str = "mnist/data/mnist.pkl.gz"
) -> Path:
    """A zip standing in for the wheel, holding ``member`` (when given) and a decoy."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mnist/__init__.py", "")
        if member_data is not None:
            archive.writestr(member, member_data)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture
def fakes() -> SimpleNamespace:
    """The fabricating helpers above, for tests (fixtures work in every pytest import mode)."""
    return SimpleNamespace(
        py2_style=py2_style,
        fake_mnist_parts=fake_mnist_parts,
        fake_mnist_gz=fake_mnist_gz,
        make_wheel=make_wheel,
    )
