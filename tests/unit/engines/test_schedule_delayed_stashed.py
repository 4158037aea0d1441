"""``delayed_stashed`` (DDG, arXiv 1804.10574, with PipeDream's weight stashing) on 2-3 fake
stages: stage k of K learns at step t from the gradient of step t - (K - k - 1) through its
forward pass of that step (its weights then), exactly a hand-written reference; a checkpoint
taken mid-run resumes bitwise; a configured staleness is refused."""

from __future__ import annotations

import dataclasses
from copy import deepcopy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from beyond_backprop.engines.schedules import check_experiment_schedule
from beyond_backprop.errors import WiringError
from beyond_backprop.experiment import Experiment
from tests.helpers import tiny_config
from tests.integration.staged_harness import experiment_for
from tests.unit.engines.test_schedule_delayed import (
    make_steppers,
    merged,
    resumed_bitwise,
    train_steps,
)
from tests.unit.engines.test_schedules_fake import STEPS, assert_equal, batches, config


def reference(experiment: Experiment, boundaries: list[int]) -> dict[str, torch.Tensor]:
    """By hand: at step t stage k back-propagates the gradient the stage above computed for
    step s = t - (K - k - 1) at step t - 1 through a copy of its blocks made at step s (the
    weights of step s) on its input of step s, and adds the copy's gradients to its own."""
    stack, cfg = experiment.stack, experiment.config
    edges = [0, *boundaries, len(stack)]
    K = len(edges) - 1
    opt = torch.optim.SGD(stack.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum)
    kept: dict[tuple[int, int], tuple[nn.Module, torch.Tensor]] = {}
    grads: dict[tuple[int, int], torch.Tensor] = {}  # (stage, step) -> dL/d(stage output)
    data = batches(experiment)
    for t, batch in enumerate(data):
        opt.zero_grad()
        x = batch.x
        for k in range(K):
            blocks = stack.blocks[edges[k] : edges[k + 1]]
            kept[(k, t)] = (nn.Sequential(*deepcopy(list(blocks))), x)
            with torch.no_grad():  # the stage's forward pass (BatchNorm statistics: once)
                x = stack.forward_range(x, edges[k], edges[k + 1])
        arrived = {}
        for k in range(K):
            s = t - (K - k - 1)
            if s < 0:
                continue
            copy, x_kept = kept.pop((k, s))
            x_in = x_kept.detach().requires_grad_(k > 0)
            out = copy(x_in)
            if k == K - 1:
                F.cross_entropy(out, data[s].y).backward()
            else:
                out.backward(grads[(k, s)])
            if k > 0:
                arrived[(k - 1, s)] = x_in.grad
            for live, copied in zip(stack.blocks[edges[k] : edges[k + 1]].parameters(),
                                    copy.parameters(), strict=True):  # fmt: skip
                live.grad = copied.grad
        grads.update(arrived)  # sent now, used by the stage below at the next step
        opt.step()
    return stack.state_dict()


@pytest.mark.parametrize(("boundaries", "batch_norm"), [([2], False), ([1, 3], True)])
def test_stage_k_learns_from_the_gradient_of_k_stages_above_through_its_own_step(
    boundaries: list[int], batch_norm: bool
) -> None:
    cfg = config("delayed_stashed", len(boundaries) + 1, rule="ddg")
    if batch_norm:
        model = {"arch": "mlp", "hidden": [16, 16, 16], "batch_norm": True}
        cfg = dataclasses.replace(cfg, model=tiny_config(model=model).model)
    steppers = make_steppers(cfg, boundaries)
    logged = train_steps(steppers, range(STEPS), close=True)
    for rank, stepper in enumerate(steppers):
        delay = len(steppers) - rank - 1
        staleness = [terms.get((stepper.owned[-1], "staleness")) for terms in logged[rank]]
        assert staleness == [float(delay)] * STEPS
        assert stepper.schedule.state_dict()["in_flight"] == []  # closed: nothing left
    assert_equal(merged(steppers), reference(experiment_for(cfg, False), boundaries), exact=True)


def test_checkpoint_mid_run_resumes_bitwise() -> None:
    saved = resumed_bitwise(config("delayed_stashed", 3, rule="ddg"), [1, 3], stop=3)
    # stage 0 (2 late) keeps 2 steps, the oldest's gradient received; stage 1 keeps 1
    assert [(len(p["in_flight"]), p["arrived"]) for p in saved] == [(2, 1), (1, 1), (0, 0)]


def test_a_configured_staleness_is_one_line_naming_its_key() -> None:
    cfg = config("delayed_stashed", 2, rule="ddg", staleness=1)
    with pytest.raises(WiringError, match=r"^engine.staleness: 1 is not used by 'delayed_stash"):
        check_experiment_schedule(experiment_for(cfg, False))
