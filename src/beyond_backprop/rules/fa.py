"""Feedback alignment: the error goes down through fixed random matrices instead of W^T."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from beyond_backprop.autograd.alignment import angle_degrees
from beyond_backprop.autograd.feedback import convert_to_feedback, feedback_layers
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import (
    Batch,
    Wiring,
)
from beyond_backprop.rules.feedback import FeedbackRule
from beyond_backprop.rules.registry import register_rule


@register_rule("fa", "feedback alignment: errors go down through fixed random B, not W^T")
class FeedbackAlignment(FeedbackRule):
    """Feedback alignment (Lillicrap, Cownden, Tweed and Akerman, arXiv 1411.0247; Nature
    Communications 7:13276, 2016, Fig. 1 and Methods).

    Back-propagation computes a hidden layer's error as ``delta_l = (W_{l+1}^T delta_{l+1}) *
    f'(a_l)``; feedback alignment replaces ``W_{l+1}^T`` by a fixed random matrix ``B_{l+1}``.
    The weight update keeps its form, ``dW_l = delta_l h_{l-1}^T``. ``prepare`` swaps every
    Linear and Conv2d of the stack for ``FeedbackLinear`` / ``FeedbackConv2d`` (autograd
    Functions whose input gradient uses B); B is a buffer of the weight's shape, saved with the
    model and never trained. The rule then wires like back-propagation: the top block learns from
    the task loss, every other block from the gradient the block above sends down, which now
    travelled through B. Diagnostics (``train.diagnostics_every``): per block, ``grad_angle``
    (the update against the true gradient), ``signal_angle`` (the error reaching the block's
    output against the true dL/dh) and ``feedback_angle`` (W against B, i.e. W^T against the
    matrix used in its place; the stack's first layer, whose B is never used, left out), in
    degrees.

    Deviations: B is drawn once per layer from a uniform distribution, either scaled by the
    layer's fan-in (``init: fan_in``, like PyTorch's default weight initialisation) or in a fixed
    range ``[-scale, scale]`` (``init: uniform``, the form of the paper's Methods); the paper's
    networks were trained with plain SGD on squared or cross-entropy errors, here any optimizer of
    the library applies. The first layer's B is drawn but unused (nothing is below it).
    """

    @dataclass(frozen=True)
    class Config:
        """How the fixed feedback matrices are drawn."""

        init: Literal["fan_in", "uniform"] = "fan_in"
        """``fan_in``: B ~ U(-scale/sqrt(fan_in), scale/sqrt(fan_in)), the range of PyTorch's
        default weight init; ``uniform``: B ~ U(-scale, scale)."""
        scale: float = 1.0
        """Scale of B's range (see ``init``)."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            if not self.scale > 0:
                return [("scale", f"{self.scale} is invalid: must be > 0")]
            return []

    default_wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="gradient")

    def draw_feedback(self, weight: Tensor) -> Tensor:
        """A fresh B for ``weight``, from torch's global generator (seeded by the run)."""
        bound = self.config.scale
        if self.config.init == "fan_in":
            bound /= math.sqrt(weight[0].numel())  # fan-in: everything one output unit reads
        return torch.empty_like(weight).uniform_(-bound, bound)

    def prepare(self, stack: BlockStack) -> list[str]:
        """Swap every Linear / Conv2d for its feedback version; fails when there is none."""
        report = convert_to_feedback(stack, self.draw_feedback)
        if not report:
            raise ValueError(
                "fa found no nn.Linear or nn.Conv2d layer to convert in this architecture"
            )
        return report

    def diagnostics(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], batch: Batch, step: int
    ) -> dict[tuple[int | None, str], float]:
        """Per block: update and error angles to backprop, and the angle of W to B."""
        figures = super().diagnostics(stack, locals_, batch, step)
        first = feedback_layers(stack)[0]  # its B sends nothing anywhere: left out
        for k, block in enumerate(stack.blocks):
            layers = [layer for layer in feedback_layers(block) if layer is not first]
            if layers:
                figures[(k, "feedback_angle")] = angle_degrees(
                    [layer.weight for layer in layers], [layer.feedback for layer in layers]
                )
        return figures
