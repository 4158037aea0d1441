from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from beyond_backprop.data.cifar10 import BATCH_FILES, load_cifar10
from beyond_backprop.data.config import DataConfig
from beyond_backprop.errors import DataError
from tests.fabricate import (
    cifar10_batch_pickle,
    cifar10_content,
    cifar10_files,
    write_cifar10_tarball,
    write_tarball,
)

N = 10  # images per batch


def batches(seed: int) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Per batch file: N images (N, 3, 32, 32) uint8 and labels."""
    return cifar10_content(5 * N, N, seed)


def fabricate(
    folder: Path, bytes_keys: bool = True
) -> tuple[Path, dict[str, tuple[np.ndarray, list[int]]]]:
    """A tarball laid out like ``cifar-10-python.tar.gz`` plus two path-traversal decoys."""
    content = batches(0)
    files = cifar10_files(content, bytes_keys)
    files["cifar-10-batches-py/readme.html"] = b"<html/>"
    files["../escape"] = b"x"
    files["cifar-10-batches-py/../../escape2"] = b"x"
    return write_tarball(folder / "cifar-10-python.tar.gz", files), content


@pytest.mark.parametrize("bytes_keys", [True, False])
def test_tarball_shapes_labels_and_channel_order(
    tmp_path: Path, isolated_cache: Path, bytes_keys: bool
) -> None:
    tarball, content = fabricate(tmp_path / "in", bytes_keys)
    splits = load_cifar10(DataConfig(name="cifar10", root=str(tarball), normalize=False))
    assert (len(splits.train), len(splits.test), splits.input_shape) == (5 * N, N, (3, 32, 32))
    train_images = np.concatenate([content[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_allclose(splits.train.x.numpy(), train_images / 255.0, atol=1e-7)
    first_row = content["data_batch_1"][0].reshape(N, 3072)[0]
    np.testing.assert_allclose(
        splits.train.x[0, 0].numpy().ravel(), first_row[:1024] / 255.0, atol=1e-7
    )  # the first 1024 bytes are the red plane
    np.testing.assert_allclose(
        splits.train.x[0, 2].numpy().ravel(), first_row[2048:] / 255.0, atol=1e-7
    )
    assert splits.test.y.tolist() == content["test_batch"][1]
    assert splits.train.y.tolist()[:N] == content["data_batch_1"][1]
    extracted = sorted(p.name for p in isolated_cache.rglob("*") if p.is_file())
    assert extracted == sorted([*BATCH_FILES, "batches.meta"])
    assert not list(tmp_path.rglob("escape*"))
    assert not list(isolated_cache.parent.rglob("escape*"))


def test_folder_parent_and_validation_split(tmp_path: Path) -> None:
    tarball, content = fabricate(tmp_path / "in")
    with tarfile.open(tarball) as archive:
        for name in BATCH_FILES:
            member = archive.getmember(f"cifar-10-batches-py/{name}")
            handle = archive.extractfile(member)
            assert handle is not None
            out = tmp_path / "cifar-10-batches-py" / name
            out.parent.mkdir(exist_ok=True)
            out.write_bytes(handle.read())
    for root in (tmp_path, tmp_path / "cifar-10-batches-py"):
        val = load_cifar10(
            DataConfig(name="cifar10", root=str(root), split="validation", normalize=False)
        )
        assert (len(val.train), len(val.test), val.eval_split) == (4 * N, N, "validation")
        assert val.test.y.tolist() == content["data_batch_5"][1]
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"cifar-10-batches-py/data_batch_3 is missing"):
        load_cifar10(DataConfig(name="cifar10", root=str(tmp_path)))


def test_tarball_missing_member_and_bad_batch(tmp_path: Path) -> None:
    content = batches(1)
    files = {f"cifar-10-batches-py/{n}": cifar10_batch_pickle(*content[n]) for n in BATCH_FILES}
    del files["cifar-10-batches-py/test_batch"]
    tarball = write_tarball(tmp_path / "c.tar.gz", files)
    with pytest.raises(DataError, match=r"c\.tar\.gz lacks cifar-10-batches-py/test_batch"):
        load_cifar10(DataConfig(name="cifar10", root=str(tarball)))
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in BATCH_FILES:
        (folder / name).write_bytes(cifar10_batch_pickle(*content[name], False))
    (folder / "data_batch_2").write_bytes(pickle.dumps({"data": content["test_batch"][0]}))
    with pytest.raises(DataError, match=r"data_batch_2: 'data' has shape \(10, 3, 32, 32\)"):
        load_cifar10(DataConfig(name="cifar10", root=str(folder)))
    (folder / "data_batch_2").write_bytes(pickle.dumps({"data": np.zeros((N, 3072), np.uint8)}))
    with pytest.raises(DataError, match=r"data_batch_2 has no 'labels'"):
        load_cifar10(DataConfig(name="cifar10", root=str(folder)))


def test_no_root_or_wrong_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cannot be downloaded here; set data\.root"):
        load_cifar10(DataConfig(name="cifar10"))
    with pytest.raises(DataError, match="holds no cifar-10-batches-py files"):
        load_cifar10(DataConfig(name="cifar10", root=str(tmp_path)))
    with pytest.raises(DataError, match="does not exist"):
        load_cifar10(DataConfig(name="cifar10", root=str(tmp_path / "missing")))


def test_fabricated_tarball_loads_and_is_standardised_per_channel(tmp_path: Path) -> None:
    """The shared fixture (64 train / 32 test) loads; ``normalize`` standardises every split
    with the training images' per-channel mean and std (the CIFAR recipe of arXiv 1512.03385)."""
    tarball, _ = write_cifar10_tarball(tmp_path)
    raw = load_cifar10(DataConfig(name="cifar10", root=str(tarball), normalize=False))
    done = load_cifar10(DataConfig(name="cifar10", root=str(tarball)))
    assert (len(done.train), len(done.test), done.input_shape) == (64, 32, (3, 32, 32))
    mean = raw.train.x.mean(dim=(0, 2, 3)).view(1, 3, 1, 1)
    std = raw.train.x.std(dim=(0, 2, 3)).view(1, 3, 1, 1)
    torch.testing.assert_close(done.train.x, (raw.train.x - mean) / std)
    torch.testing.assert_close(done.test.x, (raw.test.x - mean) / std)  # the train statistics
    torch.testing.assert_close(done.train.x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
