"""The partitioner: the exact linear partition, and block costs measured from the rule's own
step (its local modules, views and messages included) that leave no trace behind."""

from __future__ import annotations

import itertools
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from beyond_backprop.engines.partition import balanced_boundaries, measure_block_costs
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules.base import BlockContext, Objective
from beyond_backprop.run import session
from beyond_backprop.run.group import Group
from beyond_backprop.run.session import _partition
from beyond_backprop.tracking.run_dir import RunDir
from tests.helpers import tiny_config

SLEEP = 0.03


def brute_force(costs: list[float], stages: int) -> float:
    """The smallest maximum stage cost over every split of ``costs`` into ``stages`` stages."""
    n, best = len(costs), float("inf")
    for cuts in itertools.combinations(range(1, n), stages - 1):
        edges = [0, *cuts, n]
        best = min(best, max(sum(costs[a:b]) for a, b in itertools.pairwise(edges)))
    return best


def test_balanced_boundaries_are_optimal() -> None:
    rng = random.Random(0)
    for _ in range(200):
        costs = [rng.choice([0.0, rng.random()]) for _ in range(rng.randint(1, 8))]
        stages = rng.randint(1, len(costs))
        boundaries = balanced_boundaries(costs, stages)
        edges = [0, *boundaries, len(costs)]
        assert len(boundaries) == stages - 1 and boundaries == sorted(set(boundaries))
        worst = max(sum(costs[a:b]) for a, b in itertools.pairwise(edges))
        assert worst == pytest.approx(brute_force(costs, stages))
    with pytest.raises(ValueError, match=r"valid: 1\.\.2"):
        balanced_boundaries([1.0, 2.0], 3)


def snapshot(experiment: Any) -> tuple[list[dict[str, torch.Tensor]], list[Any], torch.Tensor]:
    modules = [experiment.stack, *(m for m in experiment.locals if m is not None)]
    states = [{k: v.clone() for k, v in m.state_dict().items()} for m in modules]
    grads = [p.grad for m in modules for p in m.parameters()]
    return states, grads, torch.random.get_rng_state()


RULES = [
    {"name": "dfa"},  # the output error travels down as a message
    {"name": "loco"},  # views drawn from torch's generator, heads, an overlap gradient
    {"name": "dni"},  # synthetic gradients
]


@pytest.mark.parametrize("rule", RULES, ids=[r["name"] for r in RULES])
def test_measuring_leaves_no_trace(rule: dict[str, Any]) -> None:
    config = tiny_config(model={"arch": "mlp", "hidden": [16, 16], "batch_norm": True}, rule=rule)
    experiment = build_experiment(config)
    before = snapshot(experiment)
    costs = measure_block_costs(experiment, repeats=1)
    after = snapshot(experiment)
    assert len(costs) == len(experiment.stack) and all(c >= 0 for c in costs)
    for state_before, state_after in zip(before[0], after[0], strict=True):
        for key, value in state_before.items():
            assert torch.equal(value, state_after[key]), key  # BatchNorm statistics included
    assert all(g is None for g in after[1]) and before[1] == after[1]
    assert torch.equal(before[2], after[2])  # the views' draws are given back


class SlowObjective:
    """Wraps a rule: block ``slow``'s objective takes ``SLEEP`` seconds longer."""

    def __init__(self, rule: Any, slow: int) -> None:
        self.rule, self.slow = rule, slow

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rule, name)

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        if k == self.slow:
            time.sleep(SLEEP)
        return self.rule.block_objective(k, ctx)


@pytest.mark.parametrize("slow", [0, 2])
def test_a_blocks_objective_is_part_of_its_cost(slow: int) -> None:
    """The rule's work for a block (here a deliberate wait in its objective) is counted on
    that block, so a costly local head moves the boundaries."""
    config = tiny_config(model={"arch": "mlp", "hidden": [16, 16]}, rule={"name": "dgl"})
    experiment = build_experiment(config)
    experiment.rule = SlowObjective(experiment.rule, slow)  # type: ignore[assignment]
    costs = measure_block_costs(experiment, repeats=1)
    assert costs[slow] >= SLEEP
    assert all(c < SLEEP for k, c in enumerate(costs) if k != slow)
    assert balanced_boundaries(costs, 2) == [max(slow, 1)]  # the slow block alone


def test_a_block_above_those_a_rule_trains_costs_nothing() -> None:
    """LoCo's classifier block does not run: it costs nothing."""
    config = tiny_config(model={"arch": "mlp", "hidden": [16, 16]}, rule={"name": "loco"})
    experiment = build_experiment(config)
    costs = measure_block_costs(experiment, repeats=1)
    assert costs[-1] == 0.0 and all(c > 0 for c in costs[:-1])


class RankZeroOfTwo(Group):
    """Rank 0 of a 2-rank run, as the session sees it (sharing is rank 0's own value)."""

    world_size = 2
    distributed = True


def test_a_resumed_run_keeps_the_split_it_was_started_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh staged run measures its split and records it with the costs in meta.json; a
    resumed one reads both back and measures nothing (its checkpoints hold each stage's own
    blocks, which a new, noisy measurement could split otherwise)."""
    config = tiny_config(
        model={"arch": "mlp", "hidden": [16, 16]}, rule={"name": "dgl"},
        engine={"stages": 2, "threads": 1},
    )  # fmt: skip
    experiment = build_experiment(config)
    boundaries, costs = _partition(experiment, RankZeroOfTwo(), None)
    assert len(boundaries) == 1 and costs is not None and len(costs) == 3
    run = RunDir.create(tmp_path, "run", "dgl", 0)
    run.meta.write_text(json.dumps({"stages": [[0, 2], [2, 3]], "block_costs_seconds": [1, 2, 3]}))

    def measured(*_: Any) -> list[float]:
        raise AssertionError("a resumed run measured its blocks again")

    monkeypatch.setattr(session, "measure_block_costs", measured)
    assert _partition(experiment, RankZeroOfTwo(), run) == ([2], [1, 2, 3])
    with pytest.raises(AssertionError, match="measured"):  # a fresh run does measure
        _partition(experiment, RankZeroOfTwo(), None)
