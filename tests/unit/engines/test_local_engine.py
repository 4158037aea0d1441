from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from beyond_backprop.data import augment_batch, augment_generator, epoch_order
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.engines.optim import OptimConfig, lr_at
from beyond_backprop.errors import NonFiniteLossError
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules.base import Batch
from tests.helpers import tiny_config


def test_training_learns_the_synthetic_task() -> None:
    engine = LocalEngine(build_experiment(tiny_config(train={"epochs": 4})))
    summary = engine.train()
    assert summary["completed"] and summary["steps"] == 4 * 8
    assert summary["accuracy"] > 0.9


def test_max_steps_caps_training() -> None:
    engine = LocalEngine(build_experiment(tiny_config(train={"epochs": 5, "max_steps": 3})))
    assert engine.train()["steps"] == 3


def test_non_finite_loss_names_step_block_and_term() -> None:
    engine = LocalEngine(build_experiment(tiny_config()))
    x = torch.full((4, 1, 8, 8), float("nan"))
    with pytest.raises(NonFiniteLossError) as info:
        engine.train_step(Batch(x, torch.zeros(4, dtype=torch.long)), epoch=0)
    assert str(info.value) == "non-finite loss at step 0, block 2, term 'loss': nan"


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("constant", [1.0, 1.0, 1.0]), ("cosine", [1.0, 0.5, 0.0]), ("step", [1.0, 0.1, 0.01])],
)
def test_lr_schedules(schedule: str, expected: list[float]) -> None:
    config = OptimConfig(lr=1.0, schedule=schedule, milestones=(0.5, 0.75))  # type: ignore[arg-type]
    got = [lr_at(step, 100, config) for step in (0, 50, 100)]
    assert got == pytest.approx(expected)
    assert lr_at(0, 100, OptimConfig(lr=1.0, warmup_steps=4)) == pytest.approx(0.25)


def test_evaluate_reports_accuracy_and_loss() -> None:
    engine = LocalEngine(build_experiment(tiny_config()))
    metrics = engine.evaluate(epoch=0)
    assert set(metrics) == {"accuracy", "loss"}
    assert 0 <= metrics["accuracy"] <= 1


def test_frozen_blocks_do_not_change(tmp_path: Path) -> None:
    """A rule whose active blocks exclude block 0 leaves it bitwise untouched."""
    experiment = build_experiment(tiny_config())
    experiment.rule.active_blocks = lambda epoch, n: range(1, n)  # type: ignore[method-assign]
    before = [p.clone() for p in experiment.stack.blocks[0].parameters()]
    LocalEngine(experiment).train()
    after = list(experiment.stack.blocks[0].parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


class _Recorder:
    def __init__(self) -> None:
        self.records: list[tuple[int, int | None, str | None, str, float]] = []

    def log(
        self,
        *,
        step: int,
        epoch: int,
        block: int | None,
        split: str | None,
        name: str,
        value: float,
    ) -> None:
        self.records.append((step, block, split, name, value))

    def save_checkpoint(self, step: int, state: dict[str, object]) -> None:
        pass


def test_diagnostics_are_logged_every_n_steps_before_the_update() -> None:
    experiment = build_experiment(tiny_config(train={"epochs": 1, "diagnostics_every": 3}))
    seen: list[tuple[int, float]] = []

    def diagnostics(stack, locals_, batch, step):  # type: ignore[no-untyped-def]
        weight = next(stack.parameters())
        seen.append((step, float(weight.sum())))
        return {(0, "weight_sum"): float(weight.sum())}

    experiment.rule.diagnostics = diagnostics  # type: ignore[method-assign]
    recorder = _Recorder()
    LocalEngine(experiment, recorder=recorder).train()
    diag = [r for r in recorder.records if r[2] == "diag"]
    assert [r[0] for r in diag] == [0, 3, 6]
    assert [r[4] for r in diag] == [v for _, v in seen]


def test_training_batches_are_augmented_and_evaluation_batches_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``data.augment`` on, the blocks train on cropped/flipped images (a function of the
    seed and the step), and evaluation scores the untouched test images."""
    from beyond_backprop.engines import trainer
    from beyond_backprop.engines.schedules.sync import Sync

    seen: list[torch.Tensor] = []
    cfg = tiny_config(
        data={"name": "synthetic", "batch_size": 32, "augment": {"crop_padding": 2, "flip": True}},
        train={"epochs": 1, "max_steps": 2},
    )
    experiment = build_experiment(cfg)
    original_step = Sync.step

    def recording(self: Sync, batch: Batch, step: int, epoch: int, lr: float) -> Any:
        seen.append(batch.x.clone())
        return original_step(self, batch, step, epoch, lr)

    monkeypatch.setattr(Sync, "step", recording)
    evaluated: list[torch.Tensor] = []
    real_evaluate = trainer.evaluate

    def recording_eval(rule: Any, stack: Any, locals_: Any, split: Any, size: int) -> Any:
        evaluated.append(split.x.clone())
        return real_evaluate(rule, stack, locals_, split, size)

    monkeypatch.setattr(trainer, "evaluate", recording_eval)
    LocalEngine(experiment).train()
    order = epoch_order(len(experiment.data.train), cfg.seed, 0)
    first = experiment.data.train.x[order[:32]]
    assert len(seen) == 2 and not torch.equal(seen[0], first)
    expected = augment_batch(first, cfg.data.augment, augment_generator(cfg.seed, 0))
    assert torch.equal(seen[0], expected)
    assert torch.equal(evaluated[0], experiment.data.test.x)
