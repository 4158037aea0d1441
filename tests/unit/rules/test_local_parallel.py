"""Oracles for local parallel updates: one chunk is back-propagation; chunks of one block
without overlap are DGL; with overlap every chunk's loss trains its chunk and the top block of
the chunk below, and nothing further down (checked against a hand-written reference)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from beyond_backprop.config import build_experiment_config
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.errors import ConfigError
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules.base import Batch
from tests.helpers import tiny_config

MLP = {"arch": "mlp", "hidden": [16, 16, 12, 8]}  # 5 blocks, no BatchNorm
CNN = {"arch": "cnn", "channels": [4, 8], "pool": [True, False], "fc_width": 12}
SGD = {"name": "sgd", "lr": 0.1, "momentum": 0.0, "schedule": "constant"}


def _train(rule: dict[str, Any], model: dict[str, Any], steps: int = 3) -> dict[str, Any]:
    torch.set_num_threads(1)
    experiment = build_experiment(
        tiny_config(model=model, rule=rule, optim={"name": "adam", "lr": 0.01})
    )
    engine = LocalEngine(experiment)
    data = experiment.data.train
    for i in range(steps):
        engine.train_step(Batch(data.x[i * 16 : (i + 1) * 16], data.y[i * 16 : (i + 1) * 16]), 0)
        engine.step += 1
    return engine.state_dict()


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


@pytest.mark.parametrize("model", [MLP, CNN], ids=["mlp", "cnn"])
def test_one_chunk_is_backprop(model: dict[str, Any]) -> None:
    ours = _train({"name": "local_parallel", "chunk": 99, "overlap": 1}, model)
    backprop = _train({"name": "backprop"}, model)
    _equal(ours["model"], backprop["model"])
    assert ours["locals"] == {}


@pytest.mark.parametrize("model", [MLP, CNN], ids=["mlp", "cnn"])
def test_chunks_of_one_without_overlap_are_dgl(model: dict[str, Any]) -> None:
    head = {"kind": "mlp", "depth": 2, "width": 8}
    ours = _train({"name": "local_parallel", "chunk": 1, "overlap": 0, "head": head}, model)
    dgl = _train({"name": "dgl", "head": head}, model)
    _equal(ours["model"], dgl["model"])
    _equal(ours["locals"], dgl["locals"])


@pytest.mark.parametrize(("chunk", "overlap"), [(1, 1), (2, 1), (2, 0), (3, 1)])
def test_update_equals_the_truncated_reference(chunk: int, overlap: int) -> None:
    """Every chunk's loss, back-propagated through its chunk and ``overlap`` blocks below it,
    summed: the reference spells the paper's definition out with fresh graphs per loss."""
    torch.set_num_threads(1)
    rule = {"name": "local_parallel", "chunk": chunk, "overlap": overlap}
    experiment = build_experiment(tiny_config(model=MLP, rule=rule, optim=SGD))
    stack, heads = copy.deepcopy(experiment.stack), copy.deepcopy(experiment.locals)
    params = [p for m in [stack, *heads] if m is not None for p in m.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.0)
    engine = LocalEngine(experiment)
    data = experiment.data.train
    n = len(stack)
    for i in range(3):
        x, y = data.x[i * 16 : (i + 1) * 16], data.y[i * 16 : (i + 1) * 16]
        engine.train_step(Batch(x, y), 0)
        engine.step += 1
        with torch.no_grad():
            inputs = [x]
            for block in stack.blocks:
                inputs.append(block(inputs[-1]))
        optimizer.zero_grad()
        tops = [k for k in range(n) if (k + 1) % chunk == 0 or k == n - 1]
        bottom = 0
        for top in tops:
            start = max(0, bottom - overlap)  # the loss reaches ``overlap`` blocks below
            h = inputs[start]
            for k in range(start, top + 1):
                h = stack.blocks[k](h)
            head = heads[top]
            F.cross_entropy(h if head is None else head(h), y).backward()
            bottom = top + 1
        optimizer.step()
    for a, b in zip(experiment.stack.parameters(), stack.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for m, r in zip(experiment.locals, heads, strict=True):
        if m is not None and r is not None:
            for a, b in zip(m.parameters(), r.parameters(), strict=True):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_overlap_changes_the_update() -> None:
    """Guards the reference test: with overlap the lower blocks move differently."""
    with_overlap = _train({"name": "local_parallel", "overlap": 1}, MLP)
    without = _train({"name": "local_parallel", "overlap": 0}, MLP)
    key = "blocks.0.1.weight"
    assert not torch.equal(with_overlap["model"][key], without["model"][key])


def test_heads_only_on_chunk_tops() -> None:
    experiment = build_experiment(
        tiny_config(model=MLP, rule={"name": "local_parallel", "chunk": 2})
    )
    assert [m is not None for m in experiment.locals] == [False, True, False, True, False]


def test_overlap_above_one_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"rule\.overlap: 2 is invalid"):
        build_experiment_config({"rule": {"name": "local_parallel", "overlap": 2}})
