"""Checkpoints record a checksum and refuse a corrupted file; a failed write (a full disk) is one
line naming the path and the free space, and leaves the previous checkpoint the latest."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
import torch

from beyond_backprop.errors import CheckpointError, CheckpointWriteError
from beyond_backprop.tracking import checkpoint
from beyond_backprop.tracking.checkpoint import (
    file_sha256,
    latest_checkpoint_step,
    load_latest_checkpoint,
    save_checkpoint,
)


def _state(step: int) -> dict[str, Any]:
    return {"step": step, "w": torch.arange(256, dtype=torch.float32) * step}


def test_checksum_sidecar_is_written_in_sha256sum_format(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 2, _state(2))
    sidecar = path.with_name("state.pt.sha256")
    assert sidecar.read_text() == f"{file_sha256(path)}  state.pt\n"


def test_a_flipped_byte_that_torch_would_read_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 2, _state(2))
    data = bytearray(path.read_bytes())
    # a byte inside the tensor's storage: torch.load reads it without complaint
    at = bytes(data).index(torch.tensor([14.0]).numpy().tobytes()) + 3
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    assert torch.load(path, weights_only=True)["w"][7] != 7.0 * 2  # silently wrong data
    with pytest.raises(CheckpointError, match=f"checkpoint {path}: it is corrupted \\(its sha256"):
        load_latest_checkpoint(tmp_path)


def test_checkpoint_without_sidecar_still_loads(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 2, _state(2))
    path.with_name("state.pt.sha256").unlink()  # as written before checksums were recorded
    loaded = load_latest_checkpoint(tmp_path)
    assert loaded is not None and loaded[0] == 2


def test_full_disk_is_one_line_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_checkpoint(tmp_path, 1, _state(1))

    def full(path: Path, obj: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "atomic_torch_save", full)
    with pytest.raises(CheckpointWriteError) as info:
        save_checkpoint(tmp_path, 2, _state(2))
    message = str(info.value)
    target = tmp_path / "checkpoints" / "step-2" / "state.pt"
    assert message.startswith(f"cannot write checkpoint {target}: No space left on device (")
    assert "MiB free on" in message and "step-1 stays the latest" in message
    assert "\n" not in message and info.value.exit_code == 4
    assert latest_checkpoint_step(tmp_path) == 1
    loaded = load_latest_checkpoint(tmp_path)
    assert loaded is not None and torch.equal(loaded[1]["w"], _state(1)["w"])
