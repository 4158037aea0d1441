"""Checkpoints: the latest pointer is the commit point; leftovers and corruption are handled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from beyond_backprop.errors import CheckpointError, CheckpointWriteError
from beyond_backprop.tracking import checkpoint
from beyond_backprop.tracking.checkpoint import (
    checkpoint_dir,
    latest_checkpoint_step,
    load_latest_checkpoint,
    save_checkpoint,
)


def _state(seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(3, 4, generator=g), "step": seed, "names": ["a", "b"], "x": None}


def _steps(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir())


def test_no_checkpoint_is_none(tmp_path: Path) -> None:
    assert load_latest_checkpoint(tmp_path) is None
    (tmp_path / "checkpoints" / "step-3").mkdir(parents=True)  # never committed
    assert load_latest_checkpoint(tmp_path) is None


def test_latest_is_the_last_saved(tmp_path: Path) -> None:
    first = save_checkpoint(tmp_path, 10, _state(10))
    assert first == tmp_path / "checkpoints" / "step-10" / "state.pt"
    save_checkpoint(tmp_path, 20, _state(20))
    assert (tmp_path / "checkpoints" / "latest").read_text() == "step-20"
    loaded = load_latest_checkpoint(tmp_path)
    assert loaded is not None
    step, state = loaded
    assert step == 20
    assert torch.equal(state["w"], _state(20)["w"])
    assert state["names"] == ["a", "b"] and state["x"] is None
    assert _steps(tmp_path) == ["step-10", "step-20"]


def test_leftovers_and_uncommitted_step_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_checkpoint(tmp_path, 1, _state(1))
    root = tmp_path / "checkpoints"
    # A crash mid-write: temp files beside both targets, holding what would be step 2.
    (root / ".tmp-latest.x1y2").write_text("step-2")
    (root / "step-2").mkdir()
    (root / "step-2" / ".tmp-state.pt.abc").write_bytes(b"half a pickle")

    # A crash after state.pt was renamed but before the pointer was updated.
    def crash(*args: Any) -> None:
        raise OSError("killed")

    monkeypatch.setattr(checkpoint, "atomic_write_text", crash)
    with pytest.raises(CheckpointWriteError, match="step-1 stays the latest"):
        save_checkpoint(tmp_path, 3, _state(3))
    assert (root / "step-3" / "state.pt").is_file()

    loaded = load_latest_checkpoint(tmp_path)
    assert loaded is not None and loaded[0] == 1
    assert torch.equal(loaded[1]["w"], _state(1)["w"])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_state_raises_naming_the_file(tmp_path: Path, damage: str) -> None:
    path = save_checkpoint(tmp_path, 5, _state(5))
    data = path.read_bytes()
    path.write_bytes(
        {"garbage": b"not a checkpoint" * 8, "truncated": data[: len(data) // 2], "empty": b""}[
            damage
        ]
    )
    with pytest.raises(CheckpointError) as info:
        load_latest_checkpoint(tmp_path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_pointer_to_missing_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 5, _state(5))
    path.unlink()
    with pytest.raises(CheckpointError, match=f"{path}.*does not exist"):
        load_latest_checkpoint(tmp_path)


def test_malformed_pointer(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 5, _state(5))
    (tmp_path / "checkpoints" / "latest").write_text("step-five")
    with pytest.raises(CheckpointError, match="latest holds 'step-five'"):
        latest_checkpoint_step(tmp_path)


def test_keep_prunes_oldest(tmp_path: Path) -> None:
    for step in range(1, 6):
        save_checkpoint(tmp_path, step, _state(step), keep=2)
    assert _steps(tmp_path) == ["step-4", "step-5"]
    save_checkpoint(tmp_path, 6, _state(6))  # no keep: nothing removed
    assert _steps(tmp_path) == ["step-4", "step-5", "step-6"]


def test_keep_drops_abandoned_later_steps(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 4, _state(4))
    checkpoint_dir(tmp_path, 9).mkdir()  # from an attempt that crashed before its pointer
    save_checkpoint(tmp_path, 5, _state(5), keep=2)
    assert _steps(tmp_path) == ["step-4", "step-5"]
    assert latest_checkpoint_step(tmp_path) == 5


def test_real_training_state_is_accepted(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(8, 4)).sum().backward()
    optimizer.step()
    state = {"model": model.state_dict(), "optim": optimizer.state_dict(), "dtype": torch.float32}
    save_checkpoint(tmp_path, 1, state)
    loaded = load_latest_checkpoint(tmp_path)
    assert loaded is not None
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    fresh.load_state_dict(loaded[1]["model"])
    for a, b in zip(fresh.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)
    torch.optim.Adam(fresh.parameters()).load_state_dict(loaded[1]["optim"])


def test_unsafe_state_fails_at_save_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"state\['meta'\]\['lr'\] is a numpy.float32"):
        save_checkpoint(tmp_path, 1, {"meta": {"lr": np.float32(0.1)}})
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(("step", "keep"), [(-1, None), (1, 0)])
def test_bad_arguments(tmp_path: Path, step: int, keep: int | None) -> None:
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path, step, {}, keep=keep)
