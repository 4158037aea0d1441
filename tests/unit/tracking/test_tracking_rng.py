"""RNG capture/restore: identical draws after restore, also through a weights_only checkpoint."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from beyond_backprop.errors import CheckpointError
from beyond_backprop.tracking.atomic import atomic_torch_save
from beyond_backprop.tracking.rng import (
    capture_numpy_generator,
    capture_rng_state,
    restore_numpy_generator,
    restore_rng_state,
)


def _draw() -> tuple[torch.Tensor, list[float], np.ndarray]:
    return (
        torch.randn(5),
        [random.random(), random.gauss(0, 1), float(random.getrandbits(64))],
        np.random.random(3),
    )


def _assert_same(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    assert torch.equal(a[0], b[0])
    assert a[1] == b[1]
    assert np.array_equal(a[2], b[2])


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def test_restore_repeats_draws() -> None:
    _seed(0)
    random.gauss(0, 1)  # leaves a cached gauss_next, which must be captured too
    state = capture_rng_state()
    first = _draw()
    _seed(1)
    restore_rng_state(state)
    _assert_same(first, _draw())


def test_state_survives_weights_only_checkpoint(tmp_path: Path) -> None:
    _seed(3)
    random.gauss(0, 1)
    atomic_torch_save(tmp_path / "rng.pt", {"rng": capture_rng_state()})
    first = _draw()
    _seed(4)
    loaded = torch.load(tmp_path / "rng.pt", weights_only=True)
    restore_rng_state(loaded["rng"])
    _assert_same(first, _draw())


def test_missing_part_raises() -> None:
    state = capture_rng_state()
    del state["python"]
    with pytest.raises(CheckpointError, match="lacks 'python'"):
        restore_rng_state(state)


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.MT19937, np.random.Philox])
def test_numpy_generator_round_trip(tmp_path: Path, bit_generator: Any) -> None:
    g = np.random.Generator(bit_generator(7))
    g.random(5)
    atomic_torch_save(tmp_path / "g.pt", {"g": capture_numpy_generator(g)})
    expected = g.random(4)
    other = np.random.Generator(bit_generator(99))
    restore_numpy_generator(other, torch.load(tmp_path / "g.pt", weights_only=True)["g"])
    assert np.array_equal(other.random(4), expected)


def test_numpy_generator_kind_mismatch() -> None:
    state = capture_numpy_generator(np.random.default_rng(0))
    with pytest.raises(CheckpointError, match="PCG64"):
        restore_numpy_generator(np.random.Generator(np.random.MT19937(0)), state)
