"""End-to-end back-propagation expressed block by block: the baseline every rule is measured
against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F

from beyond_backprop.rules.base import (
    BlockContext,
    LearningRule,
    LocalLoss,
    Objective,
    OutputGradient,
    Wiring,
)
from beyond_backprop.rules.registry import register_rule


@register_rule("backprop", "end-to-end back-propagation (the baseline)")
class Backprop(LearningRule):
    """Back-propagation of the cross-entropy loss through the whole stack (Rumelhart, Hinton
    and Williams 1986).

    The top block learns from the task loss; every block below learns from the true gradient
    dL/dh that the block above sends down, so the update equals ``loss.backward()`` on the
    whole stack. This is the rule with every lock in place: block k cannot update before the
    forward pass and the backward passes of all blocks above it are done.

    Deviations: none; the block-by-block form only splits the chain rule at block boundaries.
    """

    @dataclass(frozen=True)
    class Config:
        """Back-propagation has no options beyond the optimizer's."""

        label_smoothing: float = 0.0
        """Label smoothing of the cross-entropy loss (0 for none)."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            if not 0 <= self.label_smoothing <= 1:
                return [("label_smoothing", f"{self.label_smoothing} is invalid: in [0, 1]")]
            return []

    default_wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="gradient")

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """The task loss at the top; the gradient from above everywhere else."""
        if ctx.is_last:
            loss = F.cross_entropy(
                ctx.h_out, ctx.batch.y, label_smoothing=self.config.label_smoothing
            )
            return LocalLoss({"loss": loss})
        return OutputGradient(ctx.inbox["grad"])
