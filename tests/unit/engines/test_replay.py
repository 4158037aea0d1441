"""The replay buffer: bounded FIFO, draws without removal, seeded, resumable."""

from __future__ import annotations

import pytest
import torch

from beyond_backprop.config import build_experiment_config
from beyond_backprop.engines.replay import ReplayBuffer
from beyond_backprop.errors import ConfigError


def _buffer(capacity: int, sampling: str = "uniform", seed: int = 0) -> ReplayBuffer:
    return ReplayBuffer(capacity, sampling, torch.Generator().manual_seed(seed))  # type: ignore[arg-type]


def _fill(buffer: ReplayBuffer, values: range) -> None:
    for v in values:
        buffer.push((torch.tensor(float(v)), torch.tensor(v)))


def test_capacity_drops_the_oldest() -> None:
    buffer = _buffer(3, "newest")
    _fill(buffer, range(5))
    assert len(buffer) == 3
    assert float(buffer.sample()[0]) == 4.0
    assert sorted(float(e[0]) for e in buffer.state_dict()["entries"]) == [2.0, 3.0, 4.0]


def test_uniform_draws_cover_the_buffer_without_removing() -> None:
    buffer = _buffer(4)
    _fill(buffer, range(4))
    seen = {int(buffer.sample()[1]) for _ in range(200)}
    assert seen == {0, 1, 2, 3} and len(buffer) == 4


def test_draws_are_seeded() -> None:
    draws = []
    for _ in range(2):
        buffer = _buffer(5, seed=7)
        _fill(buffer, range(5))
        draws.append([int(buffer.sample()[1]) for _ in range(20)])
    assert draws[0] == draws[1]


def test_pushed_tensors_are_detached() -> None:
    buffer = _buffer(1)
    x = torch.ones(2, requires_grad=True)
    buffer.push((x * 2,))
    assert not buffer.sample()[0].requires_grad


def test_state_round_trip_continues_identically() -> None:
    a = _buffer(4, seed=3)
    _fill(a, range(6))
    b = _buffer(4, seed=99)
    b.load_state_dict(a.state_dict())
    b.generator.set_state(a.generator.get_state())
    assert [int(a.sample()[1]) for _ in range(10)] == [int(b.sample()[1]) for _ in range(10)]


def test_empty_buffer_and_bad_capacity() -> None:
    with pytest.raises(IndexError):
        _buffer(2).sample()
    with pytest.raises(ValueError, match="capacity"):
        _buffer(0)


def test_bad_replay_options_are_reported_together() -> None:
    replay = {"size": 0, "slowdown": 0.5, "slow_block": 0, "sampling": "newst"}
    with pytest.raises(ConfigError) as error:
        build_experiment_config({"engine": {"schedule": "async", "replay": replay}})
    message = str(error.value)
    assert "engine.replay.sampling: 'newst' is not one of" in message
    assert "did you mean 'newest'" in message
