"""The ``delayed`` schedule (DDG, arXiv 1804.10574) on 2-3 fake stages: stage k of K learns from
the gradient of step t - (K - k - 1), exactly a hand-written delayed-gradient reference, and
a checkpoint taken mid-run resumes bitwise."""

from __future__ import annotations

import dataclasses
import io
import threading
from collections.abc import Sequence
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from beyond_backprop.config import ExperimentConfig
from beyond_backprop.engines.channel import FakeNetwork
from beyond_backprop.engines.staged import StagedStep
from beyond_backprop.experiment import Experiment
from tests.helpers import tiny_config
from tests.integration.staged_harness import experiment_for
from tests.unit.engines.test_schedules_fake import (
    STEPS,
    assert_equal,
    batches,
    config,
    run_fake,
    run_local,
)

Terms = dict[tuple[int, str], float]


def train_steps(steppers: Sequence[StagedStep], steps: range, close: bool) -> list[list[Terms]]:
    """Run ``steps`` on every fake rank (one thread each); returns each rank's terms per step."""
    logged: list[list[Terms]] = [[] for _ in steppers]
    errors: list[BaseException] = []

    def train(rank: int) -> None:
        try:
            stepper = steppers[rank]
            for step in steps:
                batch = batches(stepper.exp)[step]
                logged[rank].append(stepper.step(batch, step, 0, stepper.exp.config.optim.lr))
            stepper.close() if close else stepper.settle()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=train, args=(r,)) for r in range(len(steppers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    if errors:
        raise errors[0]
    return logged


def make_steppers(cfg: ExperimentConfig, boundaries: list[int]) -> list[StagedStep]:
    world = len(boundaries) + 1
    network = FakeNetwork(world, 10.0)
    return [
        StagedStep(experiment_for(cfg, False), boundaries, r, world, network.channel(r))
        for r in range(world)
    ]


def merged(steppers: Sequence[StagedStep]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for stepper in steppers:
        for k in stepper.owned:
            block = stepper.exp.stack.blocks[k].state_dict()
            out.update({f"blocks.{k}.{name}": v.clone() for name, v in block.items()})
    return out


def reference(experiment: Experiment, boundaries: list[int]) -> dict[str, torch.Tensor]:
    """Delayed-gradient back-propagation by hand: at step t stage k back-propagates, through
    its blocks re-run with the current weights on its input of step s = t - (K - k - 1), the
    gradient the stage above computed for step s at step t - 1."""
    stack, cfg = experiment.stack, experiment.config
    edges = [0, *boundaries, len(stack)]
    K = len(edges) - 1
    opt = torch.optim.SGD(stack.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum)
    inputs: dict[tuple[int, int], torch.Tensor] = {}
    grads: dict[tuple[int, int], torch.Tensor] = {}  # (stage, step) -> dL/d(stage output)
    for t, batch in enumerate(batches(experiment)):
        opt.zero_grad()
        x = batch.x
        with torch.no_grad():
            for k in range(K):
                inputs[(k, t)] = x
                x = stack.forward_range(x, edges[k], edges[k + 1])
        arrived = {}
        # the re-runs leave BatchNorm's running statistics as the forward passes left them
        buffers = [b.clone() for b in stack.buffers()]
        for k in range(K):
            s = t - (K - k - 1)
            if s < 0:
                continue
            x_in = inputs[(k, s)].detach().requires_grad_(k > 0)
            out = stack.forward_range(x_in, edges[k], edges[k + 1])
            if k == K - 1:
                F.cross_entropy(out, batches(experiment)[s].y).backward()
            else:
                out.backward(grads[(k, s)])
            if k > 0:
                arrived[(k - 1, s)] = x_in.grad
        for buffer, value in zip(stack.buffers(), buffers, strict=True):
            buffer.data.copy_(value)
        grads.update(arrived)  # sent now, used by the stage below at the next step
        opt.step()
    return stack.state_dict()


@pytest.mark.parametrize(("boundaries", "batch_norm"), [([2], False), ([1, 3], True)])
def test_stage_k_learns_from_the_gradient_of_k_stages_above_steps_ago(
    boundaries: list[int], batch_norm: bool
) -> None:
    cfg = config("delayed", len(boundaries) + 1, rule="ddg")
    if batch_norm:
        model = {"arch": "mlp", "hidden": [16, 16, 16], "batch_norm": True}
        cfg = dataclasses.replace(cfg, model=tiny_config(model=model).model)
    steppers = make_steppers(cfg, boundaries)
    logged = train_steps(steppers, range(STEPS), close=True)
    world = len(steppers)
    for rank, stepper in enumerate(steppers):
        delay = world - rank - 1
        top_block = stepper.owned[-1]
        staleness = [terms.get((top_block, "staleness")) for terms in logged[rank]]
        # nothing to learn from before the first gradient came down, then always `delay` late
        assert staleness == [None] * delay + [float(delay)] * (STEPS - delay)
        assert stepper.schedule.state_dict() == {"in_flight": []}  # closed: nothing left
    assert_equal(merged(steppers), reference(experiment_for(cfg, False), boundaries), exact=True)


def test_lockstep_ddg_is_backprop_and_delayed_is_not() -> None:
    backprop = run_local(config("naive", 1), False)
    lockstep, _, _ = run_fake(config("naive", 2, rule="ddg"), False, [2])
    assert_equal(lockstep, backprop, exact=True)  # staleness 0: the lockstep form
    delayed, _, _ = run_fake(config("delayed", 2, rule="ddg"), False, [2])
    assert not torch.equal(delayed["blocks.0.1.weight"], backprop["blocks.0.1.weight"])


def checkpointed(steppers: Sequence[StagedStep]) -> list[bytes]:
    """Every stage's state, through bytes as a checkpoint file would hold it."""
    saved = []
    for stepper in steppers:
        buffer = io.BytesIO()
        torch.save(stepper.state_dict(), buffer)
        saved.append(buffer.getvalue())
    return saved


def resumed_bitwise(cfg: ExperimentConfig, boundaries: list[int], stop: int) -> list[Any]:
    """Train straight, and train ``stop`` steps, checkpoint, resume on new stages and finish:
    assert both end with the same parameters (bitwise) and logged terms; return each
    stage's checkpointed state."""
    straight = make_steppers(cfg, boundaries)
    logged_straight = train_steps(straight, range(STEPS), close=True)
    first = make_steppers(cfg, boundaries)
    logged = train_steps(first, range(stop), close=False)
    saved = checkpointed(first)
    resumed = make_steppers(cfg, boundaries)
    for stepper, state in zip(resumed, saved, strict=True):
        stepper.load_state_dict(torch.load(io.BytesIO(state)))
    rest = train_steps(resumed, range(stop, STEPS), close=True)
    assert_equal(merged(resumed), merged(straight), exact=True)
    assert [a + b for a, b in zip(logged, rest, strict=True)] == logged_straight
    return [torch.load(io.BytesIO(state)) for state in saved]


def test_checkpoint_mid_run_resumes_bitwise() -> None:
    saved = resumed_bitwise(config("delayed", 3, rule="ddg"), [1, 3], stop=2)
    assert any(state["in_flight"] for state in saved)
