"""What the feedback-alignment family shares (``fa``, ``sign_symmetry``): the task loss at the
top, the error from above (sent down through the layers' feedback matrices) everywhere else,
and the angles of the update and the error to back-propagation's."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import nn

from beyond_backprop.autograd.alignment import angle_degrees, grad_angles, stack_gradients
from beyond_backprop.autograd.feedback import true_gradients
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import (
    Batch,
    BlockContext,
    LearningRule,
    LocalLoss,
    Objective,
    OutputGradient,
)


class FeedbackRule(LearningRule):
    """The base of the rules whose layers send the error down through a feedback matrix."""

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """The task loss at the top; the gradient from above (through B) everywhere else."""
        if ctx.is_last:
            return LocalLoss({"loss": F.cross_entropy(ctx.h_out, ctx.batch.y)})
        return OutputGradient(ctx.inbox["grad"])

    def diagnostics(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], batch: Batch, step: int
    ) -> dict[tuple[int | None, str], float]:
        """Per block: the update's and the error's angle to back-propagation's."""
        ours, our_signals = stack_gradients(stack, batch.x, batch.y)
        with true_gradients(stack):
            true, true_signals = stack_gradients(stack, batch.x, batch.y)
        figures = grad_angles(ours, true, range(len(stack)))
        for k, (mine, exact) in enumerate(zip(our_signals, true_signals, strict=True)):
            figures[(k, "signal_angle")] = angle_degrees(mine, exact)
        return figures
