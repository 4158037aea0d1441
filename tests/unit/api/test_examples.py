"""The three examples run (tiny), and the example rule passes its oracle test."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F

from beyond_backprop.config import load_config
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules.base import Batch
from tests.helpers import tiny_config


def test_own_stack_example_trains_dgl_on_its_stack(tmp_path: Path) -> None:
    from examples import own_stack

    result = own_stack.main(str(tmp_path), epochs=1)
    config = load_config(result.run_dir / "config.yaml")
    assert config.model.arch == "python:examples.own_stack:make_stack"
    assert config.rule.name == "dgl" and result.summary["completed"]
    assert (result.run_dir / "metrics.jsonl").is_file()


def test_own_rule_example_trains(tmp_path: Path) -> None:
    from examples import own_rule  # imported here: it registers a rule (undone after the test)

    result = own_rule.main(str(tmp_path), epochs=2)
    assert load_config(result.run_dir / "config.yaml").rule.name == "local_linear"
    assert result.summary["accuracy"] > 0.5  # digits, two epochs of local linear heads (88%)


def test_own_dataset_example_trains(tmp_path: Path) -> None:
    from examples import own_dataset

    result = own_dataset.main(str(tmp_path), epochs=3)
    assert load_config(result.run_dir / "config.yaml").data.name == "spirals"
    assert result.summary["completed"]


def test_local_linear_is_each_block_on_its_own_linear_head() -> None:
    """The oracle: block k's update is back-propagation through block k and its linear head
    only, with the input computed before the block below updates."""
    import examples.own_rule  # noqa: F401  (registers "local_linear")

    torch.set_num_threads(1)
    sgd = {"name": "sgd", "lr": 0.1, "momentum": 0.0, "schedule": "constant"}
    experiment = build_experiment(tiny_config(rule={"name": "local_linear"}, optim=sgd))
    stack, heads = copy.deepcopy(experiment.stack), copy.deepcopy(experiment.locals)
    params = [p for m in [stack, *heads] if m is not None for p in m.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.1)
    engine = LocalEngine(experiment)
    data = experiment.data.train
    for i in range(3):
        batch = Batch(data.x[16 * i : 16 * (i + 1)], data.y[16 * i : 16 * (i + 1)])
        engine.train_step(batch, epoch=0)
        engine.step += 1
        h, losses = batch.x, []
        for block, head in zip(stack.blocks, heads, strict=True):
            h = block(h.detach())
            losses.append(F.cross_entropy(h if head is None else head(h), batch.y))
        optimizer.zero_grad()
        sum(losses).backward()  # type: ignore[union-attr]
        optimizer.step()
    for ours, theirs in zip(experiment.stack.parameters(), stack.parameters(), strict=True):
        assert torch.equal(ours, theirs)
