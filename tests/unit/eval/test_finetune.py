"""SimCLRv2's fine-tuning touches only the encoder and the kept head layers; fresh copies are
seeded; distillation teaches the student its teacher's answers; ``bbp eval --finetune``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from beyond_backprop.data.labels import labeled_subset
from beyond_backprop.eval.finetune import (
    accuracy,
    distill,
    finetune_network,
    reinitialized,
    train_supervised,
)
from beyond_backprop.eval.semi_supervised import top_head
from beyond_backprop.experiment import build_experiment
from beyond_backprop.run import start_run
from tests.helpers import run_cli
from tests.unit.rules.ssl_helpers import ssl_config


def changed(before: nn.Module, after: nn.Module) -> list[bool]:
    return [
        not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True)
    ]


@pytest.mark.parametrize("keep", [0, 1, 2])
def test_finetuning_trains_the_encoder_and_the_kept_head_layers_only(keep: int) -> None:
    experiment = build_experiment(ssl_config({"name": "simclr", "head_depth": 3}))
    stack, head = experiment.stack, top_head(experiment)
    stack_before, head_before = copy.deepcopy(stack), copy.deepcopy(head)
    net = finetune_network(stack.blocks[:-1], head, keep, 10, seed=0)
    linears = [m for m in head.net if isinstance(m, nn.Linear)]
    expected = {id(p) for p in [*stack.blocks[:-1].parameters(), *net.classifier.parameters()]}
    expected |= {id(p) for layer in linears[:keep] for p in layer.parameters()}
    assert {id(p) for p in net.parameters()} == expected
    labeled = experiment.data.train.head(48)
    train_supervised(net, labeled, epochs=2, batch_size=16, lr=1e-2, seed=0)
    for k in range(len(stack) - 1):  # every encoder parameter moved
        assert all(changed(stack_before.blocks[k], stack.blocks[k])), k
    assert not any(changed(stack_before.blocks[-1], stack.blocks[-1]))  # the unused classifier
    before = [m for m in head_before.net if isinstance(m, nn.Linear)]
    for i, (old, new) in enumerate(zip(before, linears, strict=True)):
        if i < keep:
            assert all(changed(old, new)), i
        else:  # above the fine-tune point: never used, never changed, no gradient
            assert not any(changed(old, new)), i
            assert all(p.grad is None for p in new.parameters())


def test_reinitialized_copies_are_seeded_and_forget_everything() -> None:
    experiment = build_experiment(ssl_config({"name": "simclr", "head_depth": 3}))
    net = finetune_network(experiment.stack.blocks[:-1], top_head(experiment), 1, 10, seed=0)
    train_supervised(net, experiment.data.train.head(32), epochs=1, batch_size=16, lr=1e-2, seed=0)
    state = copy.deepcopy(net.state_dict())
    fresh, again = reinitialized(net, 7), reinitialized(net, 7)
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key])  # the original is untouched
        assert torch.equal(fresh.state_dict()[key], again.state_dict()[key])
    assert all(changed(net, fresh))
    bn = next(m for m in fresh.modules() if isinstance(m, nn.BatchNorm2d))
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))


def test_distillation_teaches_the_student_the_teachers_answers() -> None:
    experiment = build_experiment(ssl_config({"name": "simclr", "head_depth": 3}))
    data = experiment.data
    teacher = finetune_network(experiment.stack.blocks[:-1], top_head(experiment), 1, 10, 0)
    labeled = labeled_subset(data.train, 0.05, 10)
    train_supervised(teacher, labeled, epochs=20, batch_size=16, lr=1e-2, seed=0)
    student = reinitialized(teacher, 1)
    teacher.eval()
    with torch.no_grad():
        answers = teacher(data.test.x).argmax(1)

    def agreement(net: nn.Module) -> float:
        net.eval()
        with torch.no_grad():
            return float((net(data.test.x).argmax(1) == answers).float().mean())

    start = agreement(student)
    state = torch.get_rng_state()
    distill(teacher, student, data.train.x, temperature=2.0, epochs=6, batch_size=64, lr=1e-2,
            seed=0)  # fmt: skip
    assert torch.equal(torch.get_rng_state(), state)
    assert agreement(student) > max(0.65, start + 0.5)
    assert 0.0 <= accuracy(student, data.test) <= 1.0
    with pytest.raises(ValueError, match="labeled"):
        distill(teacher, student, data.train.x, alpha=0.5, epochs=1, batch_size=64, lr=1e-3,
                seed=0)  # fmt: skip


def test_bbp_eval_finetune_writes_every_accuracy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ssl_config({"name": "simclr", "head_depth": 3}, tmp_path=tmp_path, train={"epochs": 1})
    run_dir = start_run(config).run_dir
    args = ["eval", "--finetune", str(run_dir), "--label-fraction", "0.1", "--epochs", "2",
            "--baseline", "--distill", "--distill-epochs", "1", "--temperature", "2",
            "--alpha", "0.5"]  # fmt: skip
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    written = json.loads((run_dir / "finetune_f0.1_from1.json").read_text())
    assert sorted(written["accuracy"]) == ["baseline", "distill", "finetune"]
    assert all(0.0 <= v <= 1.0 for v in written["accuracy"].values())
    assert (written["labels"], written["head_depth"], written["finetune_from"]) == (140, 3, 1)
    assert written["unlabeled_examples"] == 1437 and written["temperature"] == 2.0
    assert "distill" in out
    code, _, err = run_cli([*args[:5], "--finetune-from", "3"], monkeypatch, capsys)
    assert code == 2
    assert "--finetune-from 3 is invalid: this run's head has 3 layers, so keep 0 to 2" in err


def test_bbp_eval_finetune_refuses_a_run_without_a_projection_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ssl_config({"name": "backprop"}, tmp_path=tmp_path, train={"epochs": 1})
    run_dir = start_run(config).run_dir
    code, _, err = run_cli(
        ["eval", "--finetune", str(run_dir), "--label-fraction", "0.1"], monkeypatch, capsys
    )
    assert code == 2
    assert "needs a projection head on the top encoder block" in err
    assert "'backprop'" in err
