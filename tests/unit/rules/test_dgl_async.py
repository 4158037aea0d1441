"""DGL's asynchronous variant: the replay buffer's sampling (uniform, newest, the authors'
priority_lifo) and reuse limit, and that both engines (the one-process simulation and the
staged inbox) honour every ``engine.replay`` option and log staleness and reuse."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from beyond_backprop.config.engine import ReplayConfig
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.engines.replay import ReplayBuffer
from beyond_backprop.engines.schedules.asynchronous import ActivationInbox
from beyond_backprop.errors import BeyondBackpropError
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules.base import Batch
from tests.helpers import tiny_config

MLP = {"arch": "mlp", "hidden": [16, 16, 8]}
STEPS = 16


def _fill(buffer: ReplayBuffer, n: int) -> None:
    for v in range(n):
        buffer.push((torch.tensor(float(v)),))


def test_priority_lifo_takes_the_least_used_then_the_freshest() -> None:
    buffer = ReplayBuffer(3, "priority_lifo", torch.Generator().manual_seed(0))
    _fill(buffer, 3)
    drawn = [(int(buffer.sample()[0]), buffer.last_uses) for _ in range(4)]
    assert drawn == [(2, 1), (1, 1), (0, 1), (2, 2)]


@pytest.mark.parametrize("sampling", ["uniform", "newest", "priority_lifo"])
def test_max_reuse_stalls_until_a_fresh_entry_arrives(sampling: Any) -> None:
    buffer = ReplayBuffer(4, sampling, torch.Generator().manual_seed(0), max_reuse=2)
    _fill(buffer, 2)
    drawn = [int(buffer.sample()[0]) for _ in range(4)]
    assert sorted(drawn) == [0, 0, 1, 1] and not buffer.available()
    with pytest.raises(IndexError):
        buffer.sample()
    buffer.push((torch.tensor(9.0),))
    assert buffer.available() and float(buffer.sample()[0]) == 9.0


def _simulate(**replay: Any) -> tuple[dict[str, list[float]], list[int]]:
    """STEPS ticks of the one-process async DGL on a 4-block MLP: each module's logged
    staleness and reuse, and its update count."""
    config = tiny_config(
        model=MLP,
        rule={"name": "dgl"},
        engine={"schedule": "async", "threads": 1, "replay": replay},
    )
    engine = LocalEngine(build_experiment(config))
    x, y = engine.exp.data.train.x, engine.exp.data.train.y
    logged: dict[str, list[float]] = {}
    for step in range(STEPS):
        batch = Batch(
            x[(step % 8) * 32 : (step % 8 + 1) * 32], y[(step % 8) * 32 : (step % 8 + 1) * 32]
        )
        for (k, name), value in engine.train_step(batch, 0).items():
            if name in ("staleness", "reuse"):
                logged.setdefault(f"{k}/{name}", []).append(value)
        engine.step = step + 1
    return logged, list(engine.stepper.updates)  # type: ignore[attr-defined]


def test_sim_newest_in_order_learns_from_this_ticks_output() -> None:
    logged, _ = _simulate(size=4, sampling="newest", order="in_order")
    assert set(logged["2/staleness"]) == {0.0} and set(logged["2/reuse"]) == {1.0}


def test_sim_uniform_draws_older_entries_within_the_buffer_size() -> None:
    small, _ = _simulate(size=2, sampling="uniform", order="in_order")
    large, _ = _simulate(size=8, sampling="uniform", order="in_order")
    assert max(small["1/staleness"]) <= 1.0 < max(large["1/staleness"])
    assert max(large["1/reuse"]) > 1.0


def test_sim_shuffled_order_lets_a_module_step_before_the_one_below() -> None:
    logged, _ = _simulate(size=4, sampling="newest", order="shuffled")
    assert 1.0 in logged["2/staleness"]  # it ran first and took last tick's entry


def test_sim_slow_module_steps_with_probability_one_over_slowdown() -> None:
    _, updates = _simulate(size=4, slow_block=2, slowdown=4.0, order="in_order")
    assert updates[0] == STEPS and 0 < updates[2] < STEPS / 2


def test_sim_max_buffer_reuse_stalls_the_module_above_a_slow_one() -> None:
    replay = {"size": 4, "sampling": "priority_lifo", "slow_block": 1, "slowdown": 2.0}
    capped, updates = _simulate(**replay, max_buffer_reuse=1, order="in_order")
    assert set(capped["2/reuse"]) == {1.0} and updates[2] == updates[1]
    free, free_updates = _simulate(**replay, order="in_order")
    assert max(free["2/reuse"]) > 1.0 and free_updates[2] > free_updates[1]


class _Closed:
    """A channel whose sender has already stopped (the inbox's thread ends at once)."""

    def recv(self, source: int, track: bool = False) -> None:
        return None

    def note_wait(self, started: float, ended: float) -> None:
        pass


class _Stage:
    rank = 1
    channel = _Closed()


def _inbox(**replay: Any) -> ActivationInbox:
    inbox = ActivationInbox(_Stage(), ReplayConfig(**replay), seed=0)  # type: ignore[arg-type]
    inbox.thread.join()
    for step in range(4):
        inbox.buffer.push((torch.zeros(1), torch.zeros(1), torch.tensor([step])))
    return inbox


def test_staged_inbox_samples_as_configured_and_reports_reuse() -> None:
    uniform = _inbox(size=4, sampling="uniform")
    assert len({uniform.take()[2] for _ in range(20)}) > 1  # not always the newest
    lifo = _inbox(size=4, sampling="priority_lifo", max_buffer_reuse=1)
    assert [lifo.take()[2:] for _ in range(4)] == [(3, 1), (2, 1), (1, 1), (0, 1)]
    with pytest.raises(BeyondBackpropError, match="stopped early"):
        lifo.take()  # every entry used up: it would wait for the stage below, which stopped
