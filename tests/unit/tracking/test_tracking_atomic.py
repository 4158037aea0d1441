"""Atomic writes: right content, and a failure leaves the previous file and no temp file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from beyond_backprop.tracking import atomic
from beyond_backprop.tracking.atomic import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    is_temp,
)


class Unpicklable:
    """Raises while being pickled, i.e. in the middle of torch.save."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __reduce__(self) -> Any:
        raise self.exc


def test_writes_content(tmp_path: Path) -> None:
    assert atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01") == tmp_path / "a.bin"
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    atomic_write_text(tmp_path / "sub" / "a.txt", "héllo")  # creates the parent
    assert (tmp_path / "sub" / "a.txt").read_text(encoding="utf-8") == "héllo"
    atomic_write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "a.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    atomic_torch_save(tmp_path / "a.pt", {"x": torch.arange(3)})
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["x"], torch.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.json", "a.pt", "sub"]


def test_overwrites_and_uses_ordinary_permissions(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_failed_replace_keeps_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f.json"
    atomic_write_json(target, {"v": "old"})

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_json(target, {"v": "new"})
    assert json.loads(target.read_text()) == {"v": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_inside_torch_save_leaves_no_trace(tmp_path: Path, exc: BaseException) -> None:
    target = tmp_path / "state.pt"
    atomic_torch_save(target, {"x": torch.ones(2)})
    with pytest.raises(type(exc)):
        atomic_torch_save(target, {"x": torch.zeros(2), "bad": Unpicklable(exc)})
    assert torch.equal(torch.load(target, weights_only=True)["x"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_unserialisable_json_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "f.json", {"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_is_temp() -> None:
    assert is_temp("/run/checkpoints/.tmp-latest.abc")
    assert is_temp(Path(".tmp-state.pt.x"))
    assert not is_temp("/run/.tmp-dir/latest")  # only the file name counts
    assert not is_temp("state.pt")
