"""The checks of "Understanding Synthetic Gradients and Decoupled Neural Interfaces"
(Czarnecki et al., arXiv 1703.00522) that run in seconds; the plot is drawn by
examples/dni_understanding.py."""

from __future__ import annotations

import pytest
import torch


def test_linear_synthesizer_reaches_the_backprop_solution_of_a_linear_model() -> None:
    """1703.00522, Section 3 (critical points preserved) in its linear setting: a two-layer
    linear net on the squared error, trained with a linear label-conditioned synthesizer,
    converges to the least-squares optimum, the same end-to-end map as backprop reaches,
    and its synthesizer becomes exact there."""
    torch.set_num_threads(1)
    from examples.dni_understanding import linear_check

    result = linear_check("cdni", steps=400, lr=0.6)
    curves = result["curves"]
    assert curves["sg_dist"][0] > 1.0  # it starts far away
    assert curves["sg_dist"][-1] < 1e-3
    assert curves["bp_dist"][-1] < 1e-3
    assert curves["sg_loss"][-1] == pytest.approx(result["optimum_loss"], rel=1e-5)
    assert result["last_synth_loss"] < 1e-6
