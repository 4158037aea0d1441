"""PyTorch's pipeline schedules (``pp_*``) on 2 spawned ranks against one-process
back-propagation of the batch's mean loss (the LocalEngine's ``naive``, same seed)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

from beyond_backprop.config import ExperimentConfig
from beyond_backprop.config.engine import EngineConfig
from beyond_backprop.engines.channel import FakeNetwork
from beyond_backprop.engines.local import StageEngine
from beyond_backprop.engines.schedules import (
    check_experiment_schedule,
    check_schedule,
    schedule_names,
)
from beyond_backprop.engines.staged import StagedStep
from beyond_backprop.errors import WiringError
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules.registry import default_wirings
from beyond_backprop.tracking.checkpoint import load_latest_checkpoint
from beyond_backprop.tracking.metrics import read_metrics
from beyond_backprop.tracking.recorder import RunRecorder
from beyond_backprop.tracking.run_dir import metrics_file_name, state_file_name
from tests.helpers import tiny_config
from tests.integration.staged_harness import experiment_for, spawn, train_local, train_staged
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


def _final_state(engine: StageEngine, rank: int) -> dict[str, Any]:
    """What a resume must reproduce: parameters (rank 0: every stage's, gathered),
    optimizers, RNG, step and the logged loss sums (not the timings)."""
    engine.stepper.gather_parameters()
    state = engine.state_dict()
    return {key: state[key] for key in ("step", "model", "locals", "optimizers", "rng",
                                        "log_sums")}  # fmt: skip


def _whole_and_resumed(rank: int, cfg: ExperimentConfig, root: str, stop_at: int) -> Any:
    # one pair of processes runs both: spawning is the slow part
    def engine(run_dir: Path) -> StageEngine:
        # a recorder on every engine: it logs (and clears) the loss sums, which are state
        trainer = StageEngine(experiment_for(cfg, False), [1])  # new modules, stages, schedule
        trainer.recorder = RunRecorder(run_dir, 2, rank=rank, barrier=dist.barrier)
        return trainer

    whole = engine(Path(root, "whole"))
    whole.train()
    engine(Path(root, "stopped")).train(stop_after=stop_at)
    loaded = load_latest_checkpoint(Path(root, "stopped"), file_name=state_file_name(rank))
    assert loaded is not None
    resumed = engine(Path(root, "stopped"))
    resumed.load_state_dict(loaded[1])
    resumed.train()
    # the resumed run trained on: each of this rank's weights moved after the checkpoint
    owned = tuple(f"blocks.{k}." for k in resumed.stepper.owned)
    weights = [k for k in loaded[1]["model"] if k.startswith(owned)]
    at_stop, final = loaded[1]["model"], resumed.exp.stack.state_dict()
    moved = bool(weights) and all(not torch.equal(at_stop[k], final[k]) for k in weights)
    return loaded[0], moved, _final_state(whole, rank), _final_state(resumed, rank)


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """``a`` and ``b`` bitwise equal, nested dicts, lists and tensors alike."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize("schedule", ["pp_1f1b", "pp_interleaved_1f1b"])
def test_stopped_and_resumed_run_is_bitwise_the_whole_run(schedule: str, tmp_path: Path) -> None:
    # pp_1f1b: blocks [0] and [1, 2, 3] on the two ranks; pp_interleaved_1f1b: one block per
    # stage, stages 0 and 2 on rank 0. 8 steps an epoch: the stop at 5 and the resume land
    # mid-epoch, the run crosses an epoch into the second
    cfg = config(schedule)
    cfg = replace(cfg, train=replace(cfg.train, epochs=2, max_steps=11))
    outcomes = spawn(tmp_path, _whole_and_resumed, cfg, str(tmp_path), 5, timeout=120)
    ok(outcomes)
    for rank, outcome in enumerate(outcomes):
        stopped_at, moved, whole, resumed = outcome["result"]
        assert stopped_at == 5 and moved and whole["step"] == 11
        assert_same(resumed, whole, f"rank {rank}")
        momentum = [o for o in whole["optimizers"] if o is not None and o["state"]]
        assert momentum  # each rank's optimizers carry momentum buffers, compared above
        logged = [
            [{k: v for k, v in r.items() if k != "wall"} for r in read_metrics(path)]
            for path in (tmp_path / run / metrics_file_name(rank) for run in ("whole", "stopped"))
        ]
        assert logged[0] == logged[1]
    assert any(r["split"] == "train" for r in logged[0])  # rank 1 logs the top block's loss


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
