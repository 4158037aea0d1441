"""``stale_error`` (DFA) and ``stale_overlap`` (LoCo, overlapping local updates) on 2-3 fake
stages: the staleness is the configured one, staleness 0 is bitwise ``naive``, a checkpoint
taken mid-run resumes bitwise, and no lower stage waits for a signal of the current step."""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from copy import deepcopy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from beyond_backprop.config import ExperimentConfig
from beyond_backprop.engines.channel import FakeNetwork, StageError
from beyond_backprop.engines.schedules.stale import weights_kept
from beyond_backprop.engines.staged import StagedStep
from beyond_backprop.engines.step import backward_blocks, forward_blocks
from tests.helpers import tiny_config
from tests.integration.staged_harness import experiment_for
from tests.unit.engines.test_schedule_delayed import (
    make_steppers,
    merged,
    resumed_bitwise,
    train_steps,
)
from tests.unit.engines.test_schedules_fake import STEPS, assert_equal, batches

DFA = {"name": "dfa"}
OVERLAP = {"name": "local_parallel", "chunk": 1, "overlap": 1}
CASES = [("stale_error", DFA), ("stale_overlap", OVERLAP)]


def config(
    schedule: str, rule: dict[str, Any], stages: int = 2, batch_norm: bool = False, **engine: Any
) -> ExperimentConfig:
    return tiny_config(
        model={"arch": "mlp", "hidden": [16, 16, 16], "batch_norm": batch_norm},
        rule=rule,
        engine={"stages": stages, "schedule": schedule, "threads": 1, **engine},
        optim={"name": "sgd", "lr": 0.1, "momentum": 0.9, "schedule": "constant"},
    )


def boundaries_for(stages: int) -> list[int]:
    return {2: [2], 3: [1, 3]}[stages]


def run(cfg: ExperimentConfig) -> tuple[dict[str, torch.Tensor], list[list[Any]]]:
    steppers = make_steppers(cfg, boundaries_for(cfg.engine.stages))
    logged = train_steps(steppers, range(STEPS), close=True)
    for stepper in steppers:
        assert stepper.schedule.state_dict().get("in_flight", []) == []  # closed: nothing left
    return merged(steppers), logged


@pytest.mark.parametrize(("schedule", "rule"), CASES)
@pytest.mark.parametrize("configured", [1, 2, None])
def test_the_logged_staleness_is_the_configured_one_every_step(
    schedule: str, rule: dict[str, Any], configured: int | None
) -> None:
    cfg = config(schedule, rule, stages=3, staleness=configured)
    # by default: the error needs the 2 stages above stage 0; the overlap, the stage above
    staleness = (
        {"stale_error": 2, "stale_overlap": 1}[schedule] if configured is None else configured
    )
    _, logged = run(cfg)
    tops = [0, 2, 3]  # the top block of each stage: blocks 0 | 1, 2 | 3 (the logits)
    for rank, top in enumerate(tops):
        seen = [terms.get((top, "staleness")) for terms in logged[rank]]
        # the top stage learns from the current batch; the others s steps late, and the
        # means of the logged term are s exactly (when learning starts: the references below)
        assert seen == [0.0 if rank == 2 else float(staleness)] * STEPS


@pytest.mark.parametrize(("schedule", "rule"), CASES)
@pytest.mark.parametrize(("stages", "batch_norm"), [(2, False), (3, True)])
def test_staleness_0_is_bitwise_naive_and_1_is_not(
    schedule: str, rule: dict[str, Any], stages: int, batch_norm: bool
) -> None:
    naive, _ = run(config("naive", rule, stages, batch_norm))
    lockstep, _ = run(config(schedule, rule, stages, batch_norm, staleness=0))
    assert_equal(lockstep, naive, exact=True)
    stale, _ = run(config(schedule, rule, stages, batch_norm, staleness=1))
    assert not torch.equal(stale["blocks.1.0.weight"], naive["blocks.1.0.weight"])


def frozen_copy(modules: nn.Module) -> nn.Module:
    """A copy of ``modules`` as they are now (their weights of this step), without gradients."""
    copy = deepcopy(modules)
    for param in copy.parameters():
        param.grad = None
    return copy


def add_grads(into: nn.Module, source: nn.Module) -> None:
    for live, copied in zip(into.parameters(), source.parameters(), strict=True):
        assert copied.grad is not None
        live.grad = copied.grad.clone() if live.grad is None else live.grad + copied.grad


def test_a_kept_graph_back_propagates_through_the_weights_of_its_forward_pass() -> None:
    """Two layers in one block (the inner layer's gradient needs the outer weight): updated
    in place after the forward pass, the backward pass still uses the forward's weights, and
    ``of`` gives those weights (the graph's own copies; the bias, unsaved, copied anew)."""
    torch.manual_seed(0)
    block = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    reference = frozen_copy(block)
    x, grad = torch.randn(6, 4), torch.randn(6, 3)
    with weights_kept([block]) as kept:
        out = block(x)
    weights = kept.of([block])
    with torch.no_grad():
        for param in block.parameters():
            param.add_(1.0)
    out.backward(grad)
    reference(x).backward(grad)
    for live, ref in zip(block.parameters(), reference.parameters(), strict=True):
        assert live.grad is not None and ref.grad is not None
        assert torch.equal(live.grad, ref.grad)
    assert all(torch.equal(w, r) for w, r in zip(weights, reference.parameters(), strict=True))


def test_stale_dfa_is_a_hand_written_stale_error_reference() -> None:
    """By hand, 2 stages (blocks 0, 1 | 2, 3), one matrix B_k per block: at step t the top
    stage learns from e_t; blocks 0 and 1 learn from B_k e_{t-1} through their forward pass
    of step t - 1 (a copy of the blocks with the weights of step t - 1)."""
    rule = {"name": "dfa", "projection": "per_block"}
    stale, _ = run(config("stale_error", rule))
    experiment = experiment_for(config("stale_error", rule), False)
    stack, locals_ = experiment.stack, experiment.locals
    opt = torch.optim.SGD(stack.parameters(), lr=0.1, momentum=0.9)
    errors: list[torch.Tensor] = []
    copies: list[nn.Module] = []
    data = batches(experiment)
    for t, batch in enumerate(data):
        opt.zero_grad()
        copies.append(frozen_copy(stack.blocks[:2]))
        with torch.no_grad():
            x = stack.forward_range(batch.x, 0, 2)
        (_, h2), (_, logits) = forward_blocks(list(stack.blocks[2:]), 2, x, False)
        loss = F.cross_entropy(logits, batch.y)
        (error,) = torch.autograd.grad(loss, logits, retain_graph=True)
        errors.append(error)
        loss.backward()
        h2.backward(locals_[2].signal(locals_[2].project(error, locals_[2].end)))  # type: ignore[union-attr]
        if t >= 1:
            pairs = forward_blocks(list(copies[t - 1]), 0, data[t - 1].x, False)
            for k, (_, h) in enumerate(pairs):
                local = locals_[k]
                h.backward(local.signal(local.project(errors[t - 1], local.end)))  # type: ignore[union-attr]
            add_grads(stack.blocks[:2], copies[t - 1])
        opt.step()
    assert_equal(stale, stack.state_dict(), exact=True)


def test_stale_overlap_is_a_hand_written_late_overlap_reference() -> None:
    """By hand, 2 stages (blocks 0, 1 | 2, 3): every block learns from its own loss at once
    (the library's ``backward_blocks``, within a stage); block 1 also learns, at step t,
    from the gradient block 2 sent at step t - 1, through block 1's forward pass of step
    t - 1 (a copy with the weights of step t - 1)."""
    stale, _ = run(config("stale_overlap", OVERLAP))
    experiment = experiment_for(config("stale_overlap", OVERLAP), False)
    stack, rule, locals_ = experiment.stack, experiment.rule, experiment.locals
    params = [*stack.parameters(), *experiment.locals_container.parameters()]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    sent: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []  # block 1, input, dL_2/dh_1
    for t, batch in enumerate(batches(experiment)):
        opt.zero_grad()
        copy = frozen_copy(stack.blocks[1])
        lower = forward_blocks(list(stack.blocks[:2]), 0, batch.x, True)
        backward_blocks(rule, locals_, lower, 0, 4, batch, t, 0)
        upper = forward_blocks(list(stack.blocks[2:]), 2, lower[-1][1], True)
        result = backward_blocks(rule, locals_, upper, 2, 4, batch, t, 0)
        assert result.grad_below is not None
        if t >= 1:
            block, x_in, grad = sent[t - 1]
            block(x_in).backward(grad)
            add_grads(stack.blocks[1], block)
        sent.append((copy, lower[-1][0].detach(), result.grad_below))
        opt.step()
    assert_equal(stale, stack.state_dict(), exact=True)


@pytest.mark.parametrize(("schedule", "rule"), CASES)
def test_checkpoint_mid_run_resumes_bitwise(schedule: str, rule: dict[str, Any]) -> None:
    saved = resumed_bitwise(config(schedule, rule, stages=3, staleness=2), [1, 3], stop=2)
    assert [(len(p["in_flight"]), len(p["weights"]), p["arrived"]) for p in saved] == [
        (2, 2, 2),
        (2, 2, 2),
        (0, 0, 0),
    ]


def live_tensors() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) in (torch.Tensor, nn.Parameter))


@pytest.mark.parametrize(("schedule", "rule"), CASES)
def test_the_graphs_learned_from_are_freed(schedule: str, rule: dict[str, Any]) -> None:
    """Once their late signal has been applied, kept graphs are garbage: nothing (no saved
    output holding its own node) keeps them alive, so training for longer holds no more."""
    steppers = make_steppers(config(schedule, rule), [2])  # stage 0: blocks 0 and 1
    train_steps(steppers, range(STEPS), close=False)
    held = live_tensors()
    train_steps(steppers, range(STEPS), close=False)  # the same batches again
    assert live_tensors() == held


def held_until_lower_stepped(steppers: Sequence[StagedStep]) -> None:
    """The top stage holds the signal of step t until stage 0 has finished step t: a stage
    that waited for a signal of its current step would deadlock (the fake raises)."""
    done = [threading.Event() for _ in range(STEPS)]
    lower, top = steppers[0], steppers[-1]
    step_lower, send = lower.step, top.stage.channel.send_named
    sent = [0]

    def stepping(batch: Any, step: int, epoch: int, lr: float) -> Any:
        terms = step_lower(batch, step, epoch, lr)
        done[step].set()
        return terms

    def held(messages: dict[str, torch.Tensor], dst: int) -> None:
        if dst == 0:
            done[sent[0]].wait(2)
            sent[0] += 1
        send(messages, dst)

    lower.step = stepping  # type: ignore[method-assign]
    top.stage.channel.send_named = held  # type: ignore[method-assign]


@pytest.mark.parametrize(("schedule", "rule"), CASES)
@pytest.mark.parametrize("staleness", [1, 0])
def test_the_lower_stage_never_waits_for_the_current_steps_signal(
    schedule: str, rule: dict[str, Any], staleness: int
) -> None:
    cfg = config(schedule, rule, staleness=staleness)
    world = 2
    network = FakeNetwork(world, 1.0)
    steppers = [
        StagedStep(experiment_for(cfg, False), [2], r, world, network.channel(r))
        for r in range(world)
    ]
    held_until_lower_stepped(steppers)
    if staleness:
        train_steps(steppers, range(STEPS), close=True)
        assert network.log.count((1, 0, (1,))) == STEPS  # a named message came every step
    else:  # lockstep: stage 0 waits for what the top holds back
        with pytest.raises(StageError, match=r"stage 0 waited 1\.0 s for stage 1"):
            train_steps(steppers, range(STEPS), close=True)


def test_a_stage_boundary_inside_a_chunk_is_refused_in_one_line() -> None:
    from beyond_backprop.errors import WiringError

    cfg = config("stale_overlap", {"name": "local_parallel", "chunk": 2, "overlap": 1})
    steppers = make_steppers(cfg, [1])  # blocks 0 | 1, 2, 3: block 0 is inside chunk 0, 1
    with pytest.raises(WiringError, match="stale_overlap' needs the top block of every stage"):
        train_steps(steppers, range(1), close=True)


def test_a_negative_staleness_is_one_line_naming_its_key() -> None:
    from beyond_backprop.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^engine\.staleness: -1 is invalid: must be >= 0"):
        config("stale_error", DFA, staleness=-1)


@pytest.mark.parametrize(
    ("schedule", "serves"), [("stale_error", "dfa"), ("stale_overlap", "loco")]
)
def test_each_refuses_the_other_wirings_naming_the_rules_it_serves(
    schedule: str, serves: str
) -> None:
    from beyond_backprop.config.engine import EngineConfig
    from beyond_backprop.engines.schedules import check_schedule
    from beyond_backprop.rules.registry import default_wirings

    rules, engine = default_wirings(), EngineConfig(stages=2, schedule=schedule)
    assert check_schedule(engine, serves, rules[serves], rules) is None
    message = check_schedule(engine, "backprop", rules["backprop"], rules)
    assert message is not None and f"rules it serves: {serves};" in message


def test_only_the_stage_holding_block_0_draws_the_views() -> None:
    """A contrastive rule's augmented views feed block 0 only: the stage above takes the
    targets (``transform_targets``) and spends nothing on views it would not read."""
    steppers = make_steppers(config("stale_overlap", {"name": "loco"}), [2])
    drawn: list[int] = []
    for stepper in steppers:
        views = stepper.exp.rule.transform_batch

        def counted(batch: Any, step: int, rank: int = stepper.rank, views: Any = views) -> Any:
            drawn.append(rank)
            return views(batch, step)

        stepper.exp.rule.transform_batch = counted  # type: ignore[method-assign]
    train_steps(steppers, range(STEPS), close=True)
    assert drawn == [0] * STEPS
