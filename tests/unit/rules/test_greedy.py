"""Oracles for greedy layerwise learning: a block that is not training never changes (its
parameters and its BatchNorm statistics), and the training block learns exactly as
back-propagation through it and its head on the frozen blocks' output."""

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

CNN = {"arch": "cnn", "channels": [4, 8], "pool": [True, False], "fc_width": 12}  # BatchNorm


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, b[k]) for k, v in a.items())


def test_schedule_is_one_block_after_another() -> None:
    experiment = build_experiment(tiny_config(rule={"name": "greedy", "epochs_per_block": 2}))
    rule, n = experiment.rule, len(experiment.stack)
    assert rule.total_epochs(99, n) == 2 * n
    assert [list(rule.active_blocks(e, n)) for e in range(2 * n)] == [
        [k] for k in range(n) for _ in range(2)
    ]


def test_inactive_blocks_never_change() -> None:
    config = tiny_config(model=CNN, rule={"name": "greedy", "epochs_per_block": 1})
    experiment = build_experiment(config)
    engine = LocalEngine(experiment)
    stack, heads = experiment.stack, experiment.locals
    n = len(stack)
    data = experiment.data.train
    for epoch in range(n):
        before = [_snapshot(b) for b in stack.blocks]
        heads_before = [_snapshot(h) if h is not None else {} for h in heads]
        for i in range(0, len(data), 32):
            engine.train_step(Batch(data.x[i : i + 32], data.y[i : i + 32]), epoch)
            engine.step += 1
        for k in range(n):
            changed = not _same(before[k], _snapshot(stack.blocks[k]))
            assert changed == (k == epoch), f"epoch {epoch}: block {k} changed={changed}"
            if heads[k] is not None:
                head_changed = not _same(heads_before[k], _snapshot(heads[k]))  # type: ignore[arg-type]
                assert head_changed == (k == epoch)


def test_active_block_learns_as_backprop_on_block_and_head() -> None:
    torch.set_num_threads(1)
    optim = {"name": "sgd", "lr": 0.1, "momentum": 0.0, "schedule": "constant"}
    experiment = build_experiment(tiny_config(model=CNN, rule={"name": "greedy"}, optim=optim))
    frozen = copy.deepcopy(experiment.stack.blocks[0]).eval()
    block, head = copy.deepcopy(experiment.stack.blocks[1]), copy.deepcopy(experiment.locals[1])
    assert head is not None
    optimizer = torch.optim.SGD([*block.parameters(), *head.parameters()], lr=0.1, momentum=0.0)
    engine = LocalEngine(experiment)
    data = experiment.data.train
    for i in range(3):
        x, y = data.x[i * 16 : (i + 1) * 16], data.y[i * 16 : (i + 1) * 16]
        engine.train_step(Batch(x, y), epoch=1)  # epoch 1: block 1's turn
        engine.step += 1
        with torch.no_grad():
            h = frozen(x)
        optimizer.zero_grad()
        F.cross_entropy(head(block(h)), y).backward()
        optimizer.step()
    ours = experiment.stack.blocks[1].state_dict()
    for key, value in block.state_dict().items():
        assert torch.equal(ours[key], value), key


@pytest.mark.parametrize("head", [{"kind": "conv", "depth": 3}, {"kind": "mlp", "depth": 2}])
def test_head_family_options(head: dict[str, Any]) -> None:
    experiment = build_experiment(tiny_config(model=CNN, rule={"name": "greedy", "head": head}))
    local = experiment.locals[0]
    assert local is not None
    kinds = [type(m).__name__ for m in local]
    learned = [k for k in kinds if k in ("Conv2d", "Linear")]
    assert len(learned) == head["depth"]
    if head["kind"] == "conv":
        assert learned == ["Conv2d"] * (head["depth"] - 1) + ["Linear"]


def test_bad_epochs_per_block_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"rule\.epochs_per_block: 0 is invalid"):
        build_experiment_config({"rule": {"name": "greedy", "epochs_per_block": 0}})


@pytest.mark.parametrize("per_block", [True, False])
def test_learning_rate_schedule_restarts_for_every_block(
    per_block: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """layerCNN resets the schedule for each layer: with ``lr_per_block`` every block's turn
    sees the whole cosine schedule from its start; without it one schedule spans the run."""
    from beyond_backprop.engines.schedules.sync import Sync

    seen: list[float] = []
    original_step = Sync.step

    def recording(self: Sync, batch: Batch, step: int, epoch: int, lr: float) -> Any:
        seen.append(lr)
        return original_step(self, batch, step, epoch, lr)

    monkeypatch.setattr(Sync, "step", recording)
    rule = {"name": "greedy", "epochs_per_block": 1, "lr_per_block": per_block}
    cfg = tiny_config(rule=rule, optim={"schedule": "cosine"}, data={"train_limit": 64})
    experiment = build_experiment(cfg)
    LocalEngine(experiment).train()
    blocks = len(experiment.stack)
    per_turn = len(seen) // blocks
    assert per_turn >= 2 and len(seen) == per_turn * blocks
    turns = [seen[k * per_turn : (k + 1) * per_turn] for k in range(blocks)]
    if per_block:
        assert all(turn == turns[0] for turn in turns) and turns[0][0] == pytest.approx(0.1)
    else:
        assert turns[1][0] < turns[0][-1]  # the schedule keeps decaying across blocks


def test_ensemble_is_the_mean_softmax_of_every_block() -> None:
    cfg = tiny_config(rule={"name": "greedy", "ensemble": True})
    experiment = build_experiment(cfg)
    x = torch.randn(5, *experiment.stack.input_shape)
    out = experiment.rule.predictions(experiment.stack, experiment.locals, x)
    blocks = [out[k].softmax(dim=1) for k in range(len(experiment.stack))]
    assert torch.allclose(out[None].exp(), torch.stack(blocks).mean(0), atol=1e-6)
    plain = build_experiment(tiny_config(rule={"name": "greedy"}))
    x_out = plain.rule.predictions(plain.stack, plain.locals, x)
    assert torch.equal(x_out[None], x_out[len(plain.stack) - 1])


def test_invertible_downsampling_keeps_every_pixel_and_the_shapes() -> None:
    from beyond_backprop.rules.greedy import InvertibleDownsampling

    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    y = InvertibleDownsampling()(x)
    assert y.shape == (2, 12, 2, 2) and sorted(y.flatten().tolist()) == x.flatten().tolist()
    assert torch.equal(y[0, :3, 0, 0], x[0, :, 0, 0])  # channel block (0, 0) of every 2x2 cell
    model = {"arch": "cifar_cnn", "depth": 3, "width": 4, "downsample": [1], "mlp_layers": 0}
    plain = build_experiment(tiny_config(model=model, rule={"name": "greedy"}))
    cfg = tiny_config(model=model, rule={"name": "greedy", "downsampling": "invertible"})
    swapped = build_experiment(cfg)
    names = [type(m).__name__ for m in swapped.stack.blocks[1]]
    assert names[:2] == ["InvertibleDownsampling", "Conv2d"]
    assert swapped.stack.blocks[1][1].in_channels == 16  # type: ignore[index,union-attr]
    assert swapped.stack.output_shapes == plain.stack.output_shapes
    batch = swapped.data.train.x[:4]
    assert swapped.stack(batch).shape == plain.stack(batch).shape
