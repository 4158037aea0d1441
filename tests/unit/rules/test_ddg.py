"""Oracle: DDG (arXiv 1804.10574) with every delay 0 (one process, or the lockstep schedule) is
back-propagation, bitwise; the delays themselves are tested on fake stages in
``tests/unit/engines/test_schedule_delayed.py``."""

from __future__ import annotations

import pytest
import torch

from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.errors import WiringError
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules import RULES, Wiring
from beyond_backprop.rules.base import Batch
from tests.helpers import tiny_config
from tests.unit.engines.test_schedules_fake import config, run_fake

MODELS = [
    {"arch": "mlp", "hidden": [16, 16, 8], "batch_norm": True},
    {"arch": "cnn", "channels": [4, 8], "pool": [True, False], "fc_width": 12},
]


def train(rule: str, model: dict[str, object]) -> tuple[dict[str, torch.Tensor], list[float]]:
    cfg = tiny_config(model=model, rule={"name": rule}, optim={"name": "sgd", "lr": 0.05})
    engine = LocalEngine(build_experiment(cfg))
    data, losses = engine.exp.data.train, []
    for step in range(3):
        x, y = data.x[step * 16 : (step + 1) * 16], data.y[step * 16 : (step + 1) * 16]
        terms = engine.train_step(Batch(x, y), epoch=0)
        engine.step += 1
        losses.append(terms[(len(engine.exp.stack) - 1, "loss")])
    return engine.exp.stack.state_dict(), losses


@pytest.mark.parametrize("model", MODELS, ids=["mlp-bn", "cnn"])
def test_one_process_is_backprop_bitwise(model: dict[str, object]) -> None:
    ours, our_losses = train("ddg", model)
    theirs, their_losses = train("backprop", model)
    assert our_losses == their_losses
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_wiring_is_a_delayed_true_gradient() -> None:
    ddg = RULES.get("ddg")
    assert ddg(ddg.Config()).wiring == Wiring("activation", "delayed_gradient")


def test_a_schedule_that_gives_no_gradient_is_refused_naming_delayed() -> None:
    with pytest.raises(WiringError, match="schedules for 'ddg': delayed, delayed_stashed, naive"):
        run_fake(config("decoupled", 2, rule="ddg"), False, [2])


def test_decoupled_refuses_ddg_up_front_naming_delayed() -> None:
    """DDG has no estimate of its gradient to update from before it arrives (unlike DNI):
    ``decoupled`` refuses it before any work and names ``delayed``."""
    from beyond_backprop.config.engine import EngineConfig
    from beyond_backprop.engines.schedules import check_schedule
    from beyond_backprop.rules.registry import default_wirings

    wirings = default_wirings()
    message = check_schedule(
        EngineConfig(stages=2, schedule="decoupled"), "ddg", wirings["ddg"], wirings
    )
    assert message is not None and "schedules for 'ddg': delayed, delayed_stashed, naive" in message
    assert "rules it serves: cdni, dni" in message
