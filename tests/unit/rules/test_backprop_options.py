"""Backprop's options reach its loss: ``label_smoothing`` is the cross-entropy's."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules.base import Batch, BlockContext, LocalLoss
from tests.helpers import tiny_config


def test_label_smoothing_is_the_losss() -> None:
    experiment = build_experiment(tiny_config(rule={"name": "backprop", "label_smoothing": 0.2}))
    x, y = experiment.data.train.x[:16], experiment.data.train.y[:16]
    logits = experiment.stack(x)
    last = len(experiment.stack) - 1
    ctx = BlockContext(last, last + 1, x, logits, Batch(x, y), None, {}, 0, 0)
    objective = experiment.rule.block_objective(last, ctx)
    assert isinstance(objective, LocalLoss)
    expected = F.cross_entropy(logits, y, label_smoothing=0.2)
    torch.testing.assert_close(objective.terms["loss"], expected)
    assert not torch.allclose(expected, F.cross_entropy(logits, y))
