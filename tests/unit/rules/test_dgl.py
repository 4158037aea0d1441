"""Oracles for DGL: each block's update is back-propagation on that block and its head, with
the block's input computed before the block below updates; async_sim with buffers of size 1
and in-order updates is synchronous DGL, bitwise."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.errors import WiringError
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules.base import Batch
from beyond_backprop.run import resume_run, start_run
from beyond_backprop.tracking.checkpoint import load_latest_checkpoint
from tests.helpers import tiny_config

SGD = {"name": "sgd", "lr": 0.1, "momentum": 0.0, "schedule": "constant"}
CNN = {"arch": "cnn", "channels": [4, 8], "pool": [True, False], "fc_width": 12}
MLP = {"arch": "mlp", "hidden": [16, 16, 8], "batch_norm": True}


def _batches(experiment: Any, steps: int, size: int = 16) -> list[Batch]:
    data = experiment.data.train
    return [
        Batch(data.x[i * size : (i + 1) * size], data.y[i * size : (i + 1) * size])
        for i in range(steps)
    ]


def _sgd(modules: list[Any]) -> torch.optim.Optimizer:
    params = [p for m in modules if m is not None for p in m.parameters()]
    return torch.optim.SGD(params, lr=0.1, momentum=0.0)


@pytest.mark.parametrize("model", [CNN, MLP], ids=["cnn", "mlp"])
def test_each_block_learns_from_its_own_head_only(model: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    experiment = build_experiment(tiny_config(model=model, rule={"name": "dgl"}, optim=SGD))
    stack, heads = copy.deepcopy(experiment.stack), copy.deepcopy(experiment.locals)
    optimizer = _sgd([stack, *heads])
    engine = LocalEngine(experiment)
    for batch in _batches(experiment, 3):
        engine.train_step(batch, epoch=0)
        engine.step += 1
        # reference: every block on its head's loss with a detached input, each input
        # computed before the block below updates (all forwards first, then the updates)
        h, losses = batch.x, []
        for k, block in enumerate(stack.blocks):
            h = block(h.detach())
            head = heads[k]
            losses.append(F.cross_entropy(h if head is None else head(h), batch.y))
        optimizer.zero_grad()
        for loss in losses:
            loss.backward()
        optimizer.step()
    _assert_same(experiment.stack, stack)
    for ours, theirs in zip(experiment.locals, heads, strict=True):
        if ours is not None:
            _assert_same(ours, theirs)


def _assert_same(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_one_block_dgl_step_equals_backprop_on_block_and_head() -> None:
    """A block grouped from two conv stages learns exactly as back-propagation through the
    two stages and the head."""
    torch.set_num_threads(1)
    experiment = build_experiment(
        tiny_config(model=CNN, rule={"name": "dgl", "blocks": [2]}, optim=SGD)
    )
    assert len(experiment.stack) == 2 and experiment.locals[1] is None
    net = torch.nn.Sequential(
        copy.deepcopy(experiment.stack.blocks[0]), copy.deepcopy(experiment.locals[0])
    )
    optimizer = _sgd([net])
    engine = LocalEngine(experiment)
    for batch in _batches(experiment, 3):
        engine.train_step(batch, epoch=0)
        engine.step += 1
        optimizer.zero_grad()
        F.cross_entropy(net(batch.x), batch.y).backward()
        optimizer.step()
    _assert_same(experiment.stack.blocks[0], net[0])
    _assert_same(experiment.locals[0], net[1])  # type: ignore[arg-type]


def test_grouping_keeps_the_function() -> None:
    plain = build_experiment(tiny_config(model=CNN, rule={"name": "dgl"}))
    grouped = build_experiment(tiny_config(model=CNN, rule={"name": "dgl", "blocks": [1]}))
    assert len(plain.stack) == 3 and len(grouped.stack) == 2
    assert grouped.prepare_report == ["block 1 = architecture blocks 1..2"]
    x = plain.data.train.x[:4]
    plain.stack.eval()
    grouped.stack.eval()
    assert torch.equal(plain.stack(x), grouped.stack(x))


def test_predictions_report_every_block_and_the_last_output() -> None:
    experiment = build_experiment(tiny_config(model=CNN, rule={"name": "dgl"}))
    x = experiment.data.train.x[:4]
    preds = experiment.rule.predictions(experiment.stack, experiment.locals, x)
    assert set(preds) == {None, 0, 1, 2}
    assert torch.equal(preds[None], experiment.stack(x))
    assert preds[0].shape == (4, experiment.data.num_classes)


def _async(replay: dict[str, Any]) -> dict[str, Any]:
    return {"schedule": "async", "threads": 1, "replay": replay}


@pytest.mark.parametrize("model", [CNN, MLP], ids=["cnn", "mlp"])
def test_async_sim_with_buffer_one_in_order_equals_sync(model: dict[str, Any]) -> None:
    states = []
    for engine_section in [
        {"threads": 1},
        _async({"size": 1, "order": "in_order", "sampling": "uniform"}),
    ]:
        config = tiny_config(
            model=model, rule={"name": "dgl"}, optim={"name": "adam", "lr": 0.01},
            engine=engine_section, train={"epochs": 2},
        )  # fmt: skip
        engine = LocalEngine(build_experiment(config))
        engine.train()
        states.append(engine.state_dict())
    sync, simulated = states
    for key, value in sync["model"].items():
        assert torch.equal(value, simulated["model"][key]), key
    for key, value in sync["locals"].items():
        assert torch.equal(value, simulated["locals"][key]), key


def test_async_sim_shuffled_is_seeded_and_differs_from_sync() -> None:
    def run(engine_section: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        config = tiny_config(model=MLP, rule={"name": "dgl"}, engine=engine_section)
        engine = LocalEngine(build_experiment(config))
        engine.train()
        return engine.state_dict()["model"], list(getattr(engine.stepper, "updates", []))

    replay = {"size": 4, "order": "shuffled", "slow_block": 2, "slowdown": 3.0}
    first, updates = run(_async(replay))
    second, _ = run(_async(replay))
    sync, _ = run({"threads": 1})
    assert all(torch.equal(v, second[k]) for k, v in first.items())
    assert not all(torch.equal(v, sync[k]) for k, v in first.items())
    steps = 16  # 2 epochs of 256 / 32
    assert updates[0] == steps and updates[2] < steps  # the slow module steps less often


def test_async_sim_refuses_a_rule_that_is_not_stale_ok() -> None:
    with pytest.raises(WiringError, match=r"rule 'backprop' .*rules it serves: .*dgl"):
        LocalEngine(build_experiment(tiny_config(engine=_async({}))))


def test_async_sim_resume_is_bitwise_exact(tmp_path: Path) -> None:
    config = tiny_config(
        tmp_path, model=MLP, rule={"name": "dgl"}, engine=_async({"size": 3}),
        train={"epochs": 2, "log_every": 3},
    )  # fmt: skip
    straight = start_run(config)
    stopped = start_run(config, stop_after=5)
    resumed = resume_run(stopped.run_dir)
    a, b = load_latest_checkpoint(straight.run_dir), load_latest_checkpoint(resumed.run_dir)
    assert a is not None and b is not None
    for key, value in a[1]["model"].items():
        assert torch.equal(value, b[1]["model"][key]), key
