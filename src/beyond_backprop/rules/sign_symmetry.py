"""Sign-symmetric feedback: the error goes down through sign(W) times a magnitude, not W^T."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from beyond_backprop.autograd.feedback import convert_to_feedback
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import (
    Wiring,
)
from beyond_backprop.rules.feedback import FeedbackRule
from beyond_backprop.rules.registry import register_rule

Variant = Literal["usf", "brsf", "frsf"]


@register_rule("sign_symmetry", "sign-symmetric feedback: errors go down through sign(W) x |B|")
class SignSymmetry(FeedbackRule):
    """Sign-concordant feedback (Liao, Leibo and Poggio, arXiv 1510.05067, Sec. 2 and 3; the
    variants of Moskovitz, Litwin-Kumar and Abbott, arXiv 1812.06488, Sec. 2).

    As feedback alignment, the hidden error is ``delta_l = (B_{l+1} delta_{l+1}) * f'(a_l)``
    with the usual weight update, but B shares the sign of the forward weight at every step:
    ``B = sign(W) * M``. ``prepare`` swaps every Linear and Conv2d for the feedback layers of
    ``autograd/feedback.py`` with a feedback function, so B is recomputed from the current W at
    each forward pass (W's signs change while it learns; FA's B never does). The magnitude M:

    - ``usf`` (uniform sign-concordant feedback): one constant, ``scale / sqrt(fan_in)``;
    - ``brsf`` (batchwise random magnitude): ``|R|``, R redrawn at every training forward pass
      from torch's global generator (checkpointed, so a resumed run draws the same R);
    - ``frsf`` (fixed random magnitude): ``|R|`` drawn once and kept as the layer's buffer.

    R ~ U(-scale/sqrt(fan_in), scale/sqrt(fan_in)), the range of FA's default B. The rule wires
    like back-propagation (the gradient goes down, blocking). Diagnostics: per block
    ``grad_angle`` (update vs true gradient) and ``signal_angle`` (error reaching the block's
    output vs the true dL/dh), in degrees.

    Deviations: Liao et al. pair sign symmetry with batch normalisation and "Batch Manhattan"
    updates (the sign of the batch gradient); here the optimizer is the library's (set BN in the
    model and the optimizer in the preset). uSF's magnitude is scaled by the fan-in so the error
    keeps the size it has under PyTorch's default init (the papers use sign(W) unscaled, which
    BN or Batch Manhattan make harmless). The first layer's B is computed but unused.
    """

    @dataclass(frozen=True)
    class Config:
        """Which sign-concordant feedback, and its scale."""

        variant: Variant = "usf"
        """``usf``: sign(W) times a constant; ``brsf``: times |R| redrawn every batch;
        ``frsf``: times a fixed |R| (1812.06488's three variants)."""
        scale: float = 1.0
        """Magnitudes are ``scale / sqrt(fan_in)`` (usf) or ``|U(-that, that)|``."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            found = []
            if self.variant not in ("usf", "brsf", "frsf"):
                found.append(("variant", f"{self.variant!r} is invalid: valid: usf, brsf, frsf"))
            if not self.scale > 0:
                found.append(("scale", f"{self.scale} is invalid: must be > 0"))
            return found

    @property
    def wiring(self) -> Wiring:
        """As back-propagation: activations up, the (sign-fed-back) gradient down."""
        return Wiring(forward="activation", backward="gradient")

    def _bound(self, weight: Tensor) -> float:
        return self.config.scale / math.sqrt(weight[0].numel())  # fan-in of one output unit

    def _draw(self, weight: Tensor) -> Tensor:
        bound = self._bound(weight)
        return torch.empty_like(weight).uniform_(-bound, bound).abs()

    def stored_magnitude(self, weight: Tensor) -> Tensor:
        """The layer's buffer: frSF's fixed |R|; an empty tensor for the other variants."""
        if self.config.variant == "frsf":
            return self._draw(weight)
        return weight.new_empty(0)

    def magnitude(self, weight: Tensor, stored: Tensor) -> Tensor | float:
        """M of ``B = sign(W) * M`` for the current weight (a test may override it)."""
        if self.config.variant == "frsf":
            return stored
        if self.config.variant == "brsf" and torch.is_grad_enabled():
            # a fresh R per batch; only training passes draw, so evaluation leaves the RNG alone
            return self._draw(weight)
        return self._bound(weight)

    def feedback(self, weight: Tensor, stored: Tensor) -> Tensor:
        """``B = sign(W) * M``, from the weight as it is now."""
        return weight.sign() * self.magnitude(weight, stored)

    def prepare(self, stack: BlockStack) -> list[str]:
        """Swap every Linear / Conv2d for its sign-symmetric version; fails when there is none."""
        report = convert_to_feedback(stack, self.stored_magnitude, feedback_fn=self.feedback)
        if not report:
            raise ValueError(
                "sign_symmetry found no nn.Linear or nn.Conv2d layer to convert in this "
                "architecture"
            )
        return report
