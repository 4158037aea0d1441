"""The simulated-device architecture: its blocks wait as configured, forward and backward,
only in training, and otherwise train like any stack (waits recorded, not timed)."""

from __future__ import annotations

import pytest
import torch

from beyond_backprop.models import simulated
from beyond_backprop.models.simulated import SimulatedConfig


def test_a_training_step_waits_forward_and_backward_per_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(simulated.time, "sleep", waits.append)
    config = SimulatedConfig(blocks=3, width=4, forward_ms=30, backward_ms=60, rows=10)
    stack = config.build((1, 2, 2), 3)
    x = torch.randn(5, 1, 2, 2)  # half the rows: half the time
    out = stack(x)
    assert waits == [0.015] * 3
    out.sum().backward()
    assert waits == [0.015] * 3 + [0.03] * 3  # backward waits, top block first
    assert out.shape == (5, 3)
    assert all(p.grad is not None for p in stack.parameters())
    stack.eval()
    with torch.no_grad():
        stack(x)
    assert len(waits) == 6  # evaluation does not wait


def test_bad_costs_are_reported() -> None:
    problems = SimulatedConfig(blocks=0, forward_ms=float("nan"), backward_ms=-1).problems()
    assert [key for key, _ in problems] == ["blocks", "forward_ms", "backward_ms"]
