"""Every staged schedule on 2-4 fake stages (threads of this process over ``FakeChannel``):
what is sent when, that no schedule deadlocks, and that each equals one process where it
should (bitwise for the lockstep and forward-only ones)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

from beyond_backprop.config import ExperimentConfig
from beyond_backprop.engines.channel import FakeNetwork, StageError
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.engines.staged import StagedStep
from beyond_backprop.experiment import Experiment
from beyond_backprop.rules.base import Batch
from tests.helpers import AVAILABLE_DEVICES, tiny_config
from tests.integration.staged_harness import experiment_for

STEPS = 4


def config(schedule: str, stages: int, rule: str = "backprop", **engine: Any) -> ExperimentConfig:
    return tiny_config(
        model={"arch": "mlp", "hidden": [16, 16, 16]},
        rule={"name": rule},
        engine={"stages": stages, "schedule": schedule, "threads": 1, **engine},
        optim={"name": "sgd", "lr": 0.1, "momentum": 0.9, "schedule": "constant"},
    )


def batches(experiment: Experiment, device: torch.device | None = None) -> list[Batch]:
    device = device or experiment.device
    x, y = experiment.data.train.x.to(device), experiment.data.train.y.to(device)
    return [Batch(x[i * 32 : (i + 1) * 32], y[i * 32 : (i + 1) * 32]) for i in range(STEPS)]


def run_fake(
    cfg: ExperimentConfig,
    forward_only: bool,
    boundaries: list[int],
    timeout_s: float = 10.0,
    device: str = "cpu",
) -> tuple[dict[str, torch.Tensor], FakeNetwork, list[StagedStep]]:
    """Each fake rank builds its own experiment (as a process would) and trains its stage in a
    thread; returns the whole stack's parameters merged from the ranks' own blocks."""
    world = len(boundaries) + 1
    network = FakeNetwork(world, timeout_s)
    where = torch.device(device)
    experiments = [experiment_for(cfg, forward_only).to(where) for _ in range(world)]
    steppers = [
        StagedStep(experiments[r], boundaries, r, world, network.channel(r)) for r in range(world)
    ]
    errors: list[BaseException] = []

    def train(rank: int) -> None:
        try:
            for step, batch in enumerate(batches(experiments[rank], where)):
                steppers[rank].step(batch, step, 0, cfg.optim.lr)
            steppers[rank].close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=train, args=(r,)) for r in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s * 3)
    if errors:
        raise errors[0]
    merged: dict[str, torch.Tensor] = {}
    for stepper in steppers:
        for k in stepper.owned:
            block = stepper.exp.stack.blocks[k].state_dict()
            merged.update({f"blocks.{k}.{name}": v.cpu() for name, v in block.items()})
    return merged, network, steppers


def run_local(
    cfg: ExperimentConfig, forward_only: bool, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    engine = LocalEngine(experiment_for(cfg, forward_only).to(torch.device(device)))
    for step, batch in enumerate(batches(engine.exp, engine.exp.device)):
        engine.train_step(batch, 0)
        engine.step = step + 1
    return {k: v.cpu() for k, v in engine.exp.stack.state_dict().items()}


def assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], exact: bool) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if exact:
            assert torch.equal(a[key], b[key]), key
        else:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize("device", AVAILABLE_DEVICES)
@pytest.mark.parametrize("boundaries", [[2], [1, 3], [1, 2, 3]])
def test_naive_backprop_on_fake_stages_is_bitwise_one_process(
    boundaries: list[int], device: str
) -> None:
    cfg = config("naive", len(boundaries) + 1)
    staged, network, _ = run_fake(cfg, False, boundaries, device=device)
    assert_equal(staged, run_local(cfg, False, device), exact=True)
    # lockstep: per step one activation up and one named message down per boundary
    ups = [e for e in network.log if e[1] == e[0] + 1]
    assert len({(s, d) for s, d, _ in ups}) == len(boundaries)


@pytest.mark.parametrize("device", AVAILABLE_DEVICES)
@pytest.mark.parametrize("boundaries", [[2], [1, 2, 3]])
def test_pipelined_sends_only_upwards_and_is_bitwise_one_process(
    boundaries: list[int], device: str
) -> None:
    cfg = config("pipelined", len(boundaries) + 1)
    staged, network, _ = run_fake(cfg, True, boundaries, device=device)
    assert_equal(staged, run_local(cfg, True, device), exact=True)
    assert network.log and all(dst == src + 1 for src, dst, _ in network.log)
    assert sum(1 for src, _, _ in network.log if src == 0) == STEPS  # one activation a step


def test_gpipe_equals_one_process_and_sends_a_message_per_microbatch() -> None:
    cfg = config("gpipe", 2, microbatches=4)
    staged, network, _ = run_fake(cfg, False, [2])
    assert_equal(staged, run_local(cfg, False), exact=False)
    shapes_up = [what for src, dst, what in network.log if (src, dst) == (0, 1)]
    assert shapes_up.count((8, 16)) == 4 * STEPS  # 32 rows in 4 micro-batches, every step


def test_async_in_order_equals_one_process_sync() -> None:
    cfg = config("async", 3, replay={"size": 1, "order": "in_order"})
    staged, network, _ = run_fake(cfg, True, [1, 2])
    assert_equal(staged, run_local(config("naive", 3), True), exact=True)
    assert [what for src, dst, what in network.log if what == "stop"] == ["stop", "stop"]


def test_decoupled_dni_keeps_one_pending_update_and_never_waits_for_the_stage_above() -> None:
    cfg = config("decoupled", 2, rule="dni")
    _, network, steppers = run_fake(cfg, False, [2])
    schedule = steppers[0].schedule
    assert schedule.state_dict() == {"late": None, "late_input": None}  # closed: nothing left
    down = [e for e in network.log if (e[0], e[1]) == (1, 0)]
    assert down  # the true gradients did come down, one named message per step
    # the only receive rank 0 makes from rank 1 within a step is for step t-1's target:
    # the first step's update happened before anything came down
    assert network.log.index(down[0]) > network.log.index(
        next(e for e in network.log if (e[0], e[1]) == (0, 1))
    )


def test_a_schedule_waiting_for_a_message_that_never_comes_raises_naming_the_stage() -> None:
    network = FakeNetwork(2, timeout_s=0.2)
    with pytest.raises(StageError, match=r"stage 1 waited 0\.2 s for stage 0"):
        network.channel(1).recv(0)
