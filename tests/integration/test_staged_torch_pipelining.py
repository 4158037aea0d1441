"""PyTorch's pipeline schedules (``pp_*``) on 2 spawned ranks against one-process
back-propagation of the batch's mean loss (the LocalEngine's ``naive``, same seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from beyond_backprop.config import ExperimentConfig
from beyond_backprop.config.engine import EngineConfig
from beyond_backprop.engines.channel import FakeNetwork
from beyond_backprop.engines.schedules import (
    check_experiment_schedule,
    check_schedule,
    schedule_names,
)
from beyond_backprop.engines.staged import StagedStep
from beyond_backprop.errors import WiringError
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules.registry import default_wirings
from tests.helpers import tiny_config
from tests.integration.staged_harness import spawn, train_local, train_staged
from tests.integration.test_staged import assert_states, ok

PP = [name for name in schedule_names(staged=True) if name.startswith("pp_")]


def config(schedule: str, rule: dict[str, Any] | None = None, **engine: Any) -> ExperimentConfig:
    return tiny_config(
        model={"arch": "mlp", "hidden": [16, 16, 16]},  # 4 blocks: 2 ranks x 2 stages fit
        rule=rule or {"name": "backprop"},
        engine={"stages": 2, "schedule": schedule, "threads": 1, "microbatches": 4, **engine},
        train={"epochs": 1, "max_steps": 3},
        optim={"name": "sgd", "lr": 0.1, "momentum": 0.9},
    )


def test_every_pytorch_schedule_is_registered() -> None:
    assert PP == ["pp_1f1b", "pp_gpipe", "pp_interleaved_1f1b", "pp_looped_bfs",
                  "pp_zbv", "pp_zero_bubble"]  # fmt: skip


def _train_each(rank: int, configs: list[ExperimentConfig]) -> list[dict[str, Any]]:
    # one pair of processes trains every case in turn: spawning is the slow part
    return [train_staged(rank, cfg, False, [2]) for cfg in configs]


def assert_each_equals_one_process(tmp_path: Path, configs: list[ExperimentConfig]) -> None:
    staged = ok(spawn(tmp_path, _train_each, configs, timeout=180))
    for cfg, result in zip(configs, staged, strict=True):
        local = train_local(cfg, False)
        assert_states(result["stack"], local["stack"], exact=False)
        initial = build_experiment(cfg).stack.state_dict()
        weights = [k for k in initial if k.endswith(("weight", "bias"))]  # fa's B stays
        assert all(not torch.equal(initial[k], local["stack"][k]) for k in weights)  # all moved


def test_backprop_equals_one_process_backprop_of_the_mean_loss(tmp_path: Path) -> None:
    # every schedule, the interleaved ones with 2 stages of one block on each rank
    assert_each_equals_one_process(tmp_path, [config(schedule) for schedule in PP])


def test_fa_and_label_smoothing_equal_one_process(tmp_path: Path) -> None:
    # fa's layers are autograd Functions, whose backward the zero-bubble schedules split into
    # input and weight parts; label smoothing shows the loss is the rule's own
    fa = [
        config(schedule, rule={"name": "fa"})
        for schedule in ("pp_1f1b", "pp_zero_bubble", "pp_zbv")
    ]
    smoothed = config("pp_gpipe", rule={"name": "backprop", "label_smoothing": 0.2})
    assert_each_equals_one_process(tmp_path, [*fa, smoothed])


def test_microbatches_that_do_not_split_the_batch_are_refused() -> None:
    with pytest.raises(WiringError) as error:
        check_experiment_schedule(build_experiment(config("pp_1f1b", microbatches=3)))
    assert str(error.value) == (
        "engine.microbatches: 3 does not split the batches (32 rows) into equal micro-batches, "
        "as 'pp_1f1b' needs; valid: 1, 2, 4, 8, 16, 32"
    )


def test_a_rule_with_local_modules_below_the_top_is_refused() -> None:
    experiment = build_experiment(config("pp_gpipe"))
    experiment.locals[0] = torch.nn.Linear(2, 2)  # as an auxiliary head would be
    with pytest.raises(WiringError, match=r"^engine.schedule: 'pp_gpipe' back-propagates"):
        check_experiment_schedule(experiment)


def test_a_rule_without_gradient_wiring_is_refused_naming_the_valid_schedules() -> None:
    rules = default_wirings()
    engine = EngineConfig(stages=2, schedule="pp_1f1b")
    message = check_schedule(engine, "dgl", rules["dgl"], rules)
    assert message is not None
    assert message.startswith("engine.schedule: 'pp_1f1b' serves wirings with backward 'gradient'")
    assert "schedules for 'dgl': async, naive, pipelined" in message


def test_two_stages_per_rank_need_twice_as_many_blocks_as_ranks() -> None:
    cfg = tiny_config(engine={"stages": 2, "schedule": "pp_zbv"})  # mlp of 3 blocks
    network = FakeNetwork(2)
    with pytest.raises(WiringError) as error:
        StagedStep(build_experiment(cfg), [1], rank=0, world_size=2, channel=network.channel(0))
    assert str(error.value) == (
        "engine.schedule: 'pp_zbv' places 2 stages on each of 2 ranks, so it needs at least 4 "
        "blocks; this stack has 3"
    )
