"""Decoupled parallel back-propagation with delayed gradients (DDG), Huo, Gu, Yang, Huang,
"Decoupled Parallel Backpropagation with Convergence Guarantee" (arXiv 1804.10574)."""

from __future__ import annotations

from typing import ClassVar

from beyond_backprop.errors import WiringError
from beyond_backprop.rules.backprop import Backprop
from beyond_backprop.rules.base import BlockContext, Objective, Wiring
from beyond_backprop.rules.registry import register_rule


@register_rule(
    "ddg", "back-propagation with delayed gradients across stages (DDG), Huo et al. (1804.10574)"
)
class DDG(Backprop):
    """Back-propagation whose gradient may arrive late: every module (stage) of K updates from
    the gradient of an earlier step, so no module waits for the backward pass above it
    (1804.10574, Sec. 3).

    The objective of every block is back-propagation's (the task loss at the top, the gradient
    from above elsewhere); what makes it DDG is when that gradient is applied. Under the
    ``delayed`` schedule stage k of K updates at step t from the gradient of step
    t - (K - k - 1) (the top stage from the current step), back-propagated through the stage's
    blocks re-run on the input it kept for that step, with the current weights: the stale
    sample's gradient at w^t, the paper's update. On one process (or under the lockstep
    ``naive`` schedule) every delay is 0 and the rule is back-propagation, bitwise.

    Deviations: the paper's modules keep the activations of the steps in flight; here each
    stage keeps only its input of each such step and re-runs its blocks on it (a recompute:
    the saved graph could not be reused, the optimizer has changed the weights in place
    since), the same gradient at w^t for less memory and one more forward pass. The re-run
    does not move BatchNorm's running statistics (the schedule restores them). The forward
    pass stays locked, as in the paper.
    """

    default_wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="delayed_gradient")

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """Back-propagation's objective; the gradient from above must be the true one."""
        if not ctx.is_last and "grad" not in ctx.inbox:
            # a schedule that updates before the gradient came (DNI's `decoupled`) has
            # nothing to give DDG: it learns from the true gradient only, however late
            raise WiringError(
                "rule 'ddg' needs the true gradient from above, however late: use "
                "engine.schedule 'delayed' or 'delayed_stashed' (or 'naive', the lockstep form)"
            )
        return super().block_objective(k, ctx)
