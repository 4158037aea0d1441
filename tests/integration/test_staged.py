"""The StageEngine against the LocalEngine: 2 ranks, gloo, spawned processes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from beyond_backprop.config import ExperimentConfig
from beyond_backprop.config.engine import EngineConfig
from beyond_backprop.engines.local import StageEngine
from beyond_backprop.engines.schedules import check_schedule
from beyond_backprop.rules import RULES
from beyond_backprop.rules.base import Wiring
from beyond_backprop.rules.registry import default_wirings
from tests.helpers import tiny_config
from tests.integration.staged_harness import (
    experiment_for,
    spawn,
    stopped_and_resumed,
    train_local,
    train_staged,
)


def config(schedule: str, rule: str = "backprop", **train: Any) -> ExperimentConfig:
    return tiny_config(
        model={"arch": "mlp", "hidden": [16, 16, 16]},
        rule={"name": rule},
        engine={
            "stages": 2,
            "schedule": schedule,
            "threads": 1,
            "microbatches": 4,
        },
        train={"epochs": 2, **train},
        optim={"name": "sgd", "lr": 0.1, "momentum": 0.9},
    )


def assert_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], exact: bool) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if exact:
            assert torch.equal(a[key], b[key]), key
        else:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def ok(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    for outcome in outcomes:
        assert outcome["ok"], outcome.get("trace") or outcome
    return outcomes[0]["result"]


def test_pipelined_forward_only_rule_is_bitwise_the_local_engine(tmp_path: Path) -> None:
    cfg = config("pipelined")
    staged = ok(spawn(tmp_path, train_staged, cfg, True, [2]))
    local = train_local(cfg, True)
    assert_states(staged["stack"], local["stack"], exact=True)
    assert_states(staged["locals"], local["locals"], exact=True)


def test_naive_backprop_is_bitwise_the_local_engine(tmp_path: Path) -> None:
    cfg = config("naive")
    staged = ok(spawn(tmp_path, train_staged, cfg, False, [1]))
    assert_states(staged["stack"], train_local(cfg, False)["stack"], exact=True)


# sign_symmetry: its default variant (uSF) draws nothing at random, so micro-batches change
# only the float summation order, as for backprop
@pytest.mark.parametrize("rule", ["backprop", "sign_symmetry"])
def test_gpipe_equals_one_process_of_the_mean_loss(rule: str, tmp_path: Path) -> None:
    cfg = config("gpipe", rule, epochs=1)
    staged = ok(spawn(tmp_path, train_staged, cfg, False, [2]))
    local = train_local(cfg, False)
    assert_states(staged["stack"], local["stack"], exact=False)
    first = next(iter(local["stack"]))
    initial = experiment_for(cfg, False).stack.state_dict()[first]
    assert not torch.equal(initial, local["stack"][first])  # training did move the weights


def test_schedules_refuse_wirings_they_cannot_serve() -> None:
    rules = default_wirings()
    staged = {
        name: EngineConfig(stages=2, schedule=name) for name in ("pipelined", "gpipe", "naive")
    }
    message = check_schedule(staged["pipelined"], "backprop", rules["backprop"], rules)
    assert message is not None
    assert message.startswith("engine.schedule: 'pipelined' serves wirings with backward 'none'")
    assert "schedules for 'backprop': gpipe, naive" in message
    assert check_schedule(staged["gpipe"], "x", Wiring(backward="none"), rules) is not None
    assert check_schedule(staged["naive"], "x", Wiring(backward="output_error"), rules) is None
    one = check_schedule(EngineConfig(schedule="pipelined"), "dgl", rules["dgl"], rules)
    assert one is not None and "'pipelined' needs engine.stages >= 2" in one


def _dies_at_step_3(rank: int, cfg: ExperimentConfig) -> str:
    engine = StageEngine(experiment_for(cfg, False), [2])
    if rank == 1:
        original = engine.train_step

        def step(batch, epoch):  # type: ignore[no-untyped-def]
            if engine.step == 3:
                os._exit(17)  # a crash: no goodbye to the other stage
            return original(batch, epoch)

        engine.train_step = step  # type: ignore[method-assign]
    engine.train()
    return "finished"


def test_a_dead_rank_ends_the_run_with_a_message_naming_it(tmp_path: Path) -> None:
    rank0, rank1 = spawn(tmp_path, _dies_at_step_3, config("naive"), timeout=40)
    assert rank1 == {"ok": False, "exitcode": 17}
    assert not rank0["ok"]
    assert rank0["error"].startswith("StageError: stage 0 (rank 0) could not")
    assert "stage 1 (rank 1)" in rank0["error"]


def _stop_and_resume(rank: int, cfg: ExperimentConfig, run_dir: str) -> dict[str, Any]:
    import torch.distributed as dist

    from beyond_backprop.tracking.checkpoint import load_latest_checkpoint
    from beyond_backprop.tracking.recorder import RunRecorder
    from beyond_backprop.tracking.run_dir import state_file_name

    path = Path(run_dir)
    first = StageEngine(experiment_for(cfg, True), [2])
    first.recorder = RunRecorder(path, 2, rank=rank, barrier=dist.barrier)
    # only rank 1 is asked to stop: the ranks must agree and stop at the same step
    first.should_stop = lambda: rank == 1 and first.step >= 5
    stopped = first.train()
    loaded = load_latest_checkpoint(path, file_name=state_file_name(rank))
    assert loaded is not None
    second = StageEngine(experiment_for(cfg, True), [2])
    second.load_state_dict(loaded[1])
    second.train()
    second.stepper.gather_parameters()
    return {
        "stopped_at": stopped["steps"],
        "stack": second.exp.stack.state_dict() if rank == 0 else None,
    }


def test_stop_on_one_rank_checkpoints_all_and_resume_is_bitwise(tmp_path: Path) -> None:
    cfg = tiny_config(
        model={"arch": "mlp", "hidden": [16, 16, 16]},
        engine={"stages": 2, "schedule": "pipelined", "threads": 1,
                "stop_check_every": 2},
        train={"epochs": 2},
    )  # fmt: skip
    (tmp_path / "run").mkdir()
    outcomes = spawn(tmp_path, _stop_and_resume, cfg, str(tmp_path / "run"))
    result = ok(outcomes)
    assert result["stopped_at"] == 6  # the first agreement point at or after step 5
    assert outcomes[1]["result"]["stopped_at"] == 6
    assert_states(result["stack"], train_local(cfg, True)["stack"], exact=True)


def test_async_in_order_is_bitwise_the_synchronous_run(tmp_path: Path) -> None:
    cfg = tiny_config(
        model={"arch": "mlp", "hidden": [16, 16, 16]},
        engine={"stages": 2, "schedule": "async", "threads": 1,
                "replay": {"order": "in_order"}},
        train={"epochs": 2},
    )  # fmt: skip
    staged = ok(spawn(tmp_path, train_staged, cfg, True, [2]))
    assert_states(staged["stack"], train_local(cfg, True)["stack"], exact=True)


def _async_terms(rank: int, cfg: ExperimentConfig) -> dict[str, Any]:
    engine = StageEngine(experiment_for(cfg, True), [2])
    seen: list[float] = []
    original = engine._record_terms

    def record(terms, epoch):  # type: ignore[no-untyped-def]
        seen.extend(v for (_, name), v in terms.items() if name == "staleness")
        original(terms, epoch)

    engine._record_terms = record  # type: ignore[method-assign]
    summary = engine.train()
    return {"staleness": seen, "accuracy": summary["accuracy"], "steps": summary["steps"]}


def test_async_replay_runs_and_logs_staleness(tmp_path: Path) -> None:
    cfg = tiny_config(
        model={"arch": "mlp", "hidden": [16, 16, 16]},
        engine={"stages": 2, "schedule": "async", "threads": 1,
                "replay": {"size": 4, "sampling": "uniform"}},
        train={"epochs": 3},
    )  # fmt: skip
    rank0, rank1 = (
        o["result"] for o in spawn(tmp_path, _async_terms, cfg) if o["ok"] or pytest.fail(str(o))
    )
    assert rank0["staleness"] == []  # the first stage reads data, never stale
    # one staleness figure per update; its values depend on timing, so only their form is checked
    assert len(rank1["staleness"]) == rank1["steps"] == 24
    assert all(float(s).is_integer() for s in rank1["staleness"])
    assert 0 <= rank0["accuracy"] <= 1


# gim draws its sampled negatives from the global RNG inside each block's objective: in one
# process the blocks draw one after another from one stream, on two ranks each from its own,
# so its staged run is a valid run but not bitwise the one-process run (checked for learning
# below instead)
RANDOM_OBJECTIVES = ("gim", "forward_gradient")


@pytest.mark.parametrize("rule", RULES.names())
def test_every_rule_trains_bitwise_the_same_on_two_stages(rule: str, tmp_path: Path) -> None:
    """Each rule's smoke preset, 4 steps: 2 stages (pipelined for forward-only wirings, naive
    otherwise) leave exactly the LocalEngine's parameters, whatever the rule's messages and
    whichever blocks it trains (greedy and provable: one block at a time, the others frozen;
    the contrastive rules: the classifier block sits out)."""
    from beyond_backprop.config import load_config

    preset = Path(__file__).parents[2] / "configs" / "smoke" / f"{rule}.yaml"
    options = load_config(preset).rule.options
    schedule = "pipelined" if RULES.get(rule)(options).wiring.backward == "none" else "naive"
    cfg = load_config(preset, [
        "engine.stages=2", f"engine.schedule={schedule}",
        "engine.threads=1", "train.max_steps=4",
    ])  # fmt: skip
    staged = ok(spawn(tmp_path, train_staged, cfg, False, [1]))
    local = train_local(cfg, False)
    if rule in RANDOM_OBJECTIVES:
        initial = experiment_for(cfg, False).stack.state_dict()
        moved = [k for k, v in staged["stack"].items() if not torch.equal(v, initial[k])]
        assert moved, "the staged run trained nothing"
        return
    assert_states(staged["stack"], local["stack"], exact=True)
    assert_states(staged["locals"], local["locals"], exact=True)


def dni_config(schedule: str, *overrides: str, **train: Any) -> ExperimentConfig:
    from beyond_backprop.config import load_config

    preset = Path(__file__).parents[2] / "configs" / "smoke" / "dni.yaml"
    return load_config(preset, [
        "engine.stages=2", f"engine.schedule={schedule}",
        "engine.threads=1", "engine.stop_check_every=1", "train.diagnostics_every=null",
        *(f"train.{key}={value}" for key, value in train.items()), *overrides,
    ])  # fmt: skip


def _updates_before_messages(
    rank: int, cfg: ExperimentConfig, flag: str, holder: int, send: str, recv: str
) -> dict[str, Any]:
    """Rank ``holder`` holds its first message (``Channel.<send>``) until the other rank has
    stepped its optimizer (or 3 s have passed); the other rank reports how many messages
    (``Channel.<recv>``) it had received by then."""
    import time

    engine = StageEngine(experiment_for(cfg, False), [1])
    channel, report = engine.stepper.stage.channel, {"received_before_update": None, "waited": None}
    if rank != holder:
        received = [0]
        optimizers = engine.stepper.optimizers
        receive, step_optimizers = getattr(channel, recv), optimizers.step

        def counting(*args):  # type: ignore[no-untyped-def]
            received[0] += 1
            return receive(*args)

        def stepping(blocks):  # type: ignore[no-untyped-def]
            step_optimizers(blocks)
            if report["received_before_update"] is None:
                report["received_before_update"] = received[0]
                Path(flag).touch()

        setattr(channel, recv, counting)
        optimizers.step = stepping  # type: ignore[method-assign]
    else:
        sending = getattr(channel, send)

        def held(*args):  # type: ignore[no-untyped-def]
            if report["waited"] is None:
                deadline = time.monotonic() + 3
                while not Path(flag).exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
                report["waited"] = Path(flag).exists()
            sending(*args)

        setattr(channel, send, held)
    engine.train()
    return report


@pytest.mark.parametrize("schedule", ["decoupled", "naive"])
def test_decoupled_dni_updates_before_the_stage_above_sends_anything_back(
    schedule: str, tmp_path: Path
) -> None:
    outcomes = spawn(tmp_path, _updates_before_messages, dni_config(schedule, max_steps=3),
                     str(tmp_path / "flag"), 1, "send_named", "recv_named")  # fmt: skip
    ok(outcomes)
    rank0, rank1 = (outcome["result"] for outcome in outcomes)
    if schedule == "decoupled":
        assert rank0["received_before_update"] == 0 and rank1["waited"]
    else:  # the update-locked schedule cannot update before the gradient from above comes
        assert rank0["received_before_update"] == 1 and not rank1["waited"]


@pytest.mark.parametrize("synthetic_inputs", [True, False])
def test_decoupled_dni_with_synthetic_inputs_learns_before_its_input_arrives(
    synthetic_inputs: bool, tmp_path: Path
) -> None:
    cfg = dni_config(
        "decoupled", f"rule.synthetic_inputs={str(synthetic_inputs).lower()}", max_steps=3
    )
    outcomes = spawn(tmp_path, _updates_before_messages, cfg, str(tmp_path / "flag"), 0, "send",
                     "recv_required")  # fmt: skip
    ok(outcomes)
    rank0, rank1 = (outcome["result"] for outcome in outcomes)
    if synthetic_inputs:  # stage 1 trains on I_1(x), then takes the real input
        assert rank1["received_before_update"] == 0 and rank0["waited"]
    else:  # forward-locked: the input (header and payload) comes first
        assert rank1["received_before_update"] >= 1 and not rank0["waited"]


def _stop_at_5_and_resume(rank: int, cfg: ExperimentConfig, run_dir: str) -> dict[str, Any]:
    # pending: the late gradient (a late input: rank 1 only)
    return stopped_and_resumed(rank, cfg, run_dir, lambda schedule: schedule.late is not None)


@pytest.mark.parametrize("synthetic_inputs", [False, True])
def test_decoupled_dni_resumes_bitwise_with_its_pending_late_update(
    synthetic_inputs: bool, tmp_path: Path
) -> None:
    overrides = ["rule.synthetic_inputs=true"] if synthetic_inputs else []
    cfg = dni_config("decoupled", *overrides, max_steps=10)
    (tmp_path / "run").mkdir()
    outcomes = spawn(tmp_path, _stop_at_5_and_resume, cfg, str(tmp_path / "run"))
    resumed = ok(outcomes)
    assert resumed["pending"] and not outcomes[1]["result"]["pending"]  # only stage 0 waits
    (tmp_path / "whole").mkdir()
    whole = ok(spawn(tmp_path / "whole", train_staged, cfg, False, [1]))
    assert_states(resumed["stack"], whole["stack"], exact=True)
    assert_states(resumed["locals"], whole["locals"], exact=True)
    local = train_local(cfg, False)  # the late synthesizer update is a different algorithm
    assert not torch.equal(local["locals"]["0.gradient.net.0.weight"],
                           whole["locals"]["0.gradient.net.0.weight"])  # fmt: skip
