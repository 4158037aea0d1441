"""The Forward-Forward algorithm: each layer tells positive from negative data by its goodness."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import (
    Batch,
    BlockContext,
    LearningRule,
    LocalLoss,
    Objective,
    Wiring,
)
from beyond_backprop.rules.registry import register_rule


class LengthNorm(nn.Module):
    """Scales each example's features to unit root-mean-square (length sqrt(D)), so only the
    direction of the layer below's activity vector is passed up, not its goodness."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, h: Tensor) -> Tensor:
        rms = h.flatten(1).pow(2).mean(1).sqrt()
        return h / (rms + self.eps).view(-1, *([1] * (h.dim() - 1)))


def embed_label(x: Tensor, y: Tensor, num_classes: int, value: float) -> Tensor:
    """``x`` with its first ``num_classes`` pixels replaced by the one-hot label ``y`` (times
    ``value``), the paper's MNIST encoding (Sec. 3.3)."""
    flat = x.flatten(1).clone()
    flat[:, :num_classes] = F.one_hot(y, num_classes).to(x.dtype) * value
    return flat.view_as(x)


def goodness(h: Tensor, kind: Literal["sum", "mean"]) -> Tensor:
    """Per example: the sum (or mean) of the squared activities."""
    squares = h.flatten(1).pow(2)
    return squares.sum(1) if kind == "sum" else squares.mean(1)


def ff_loss(g_pos: Tensor, g_neg: Tensor, theta: float) -> Tensor:
    """The paper's logistic loss: ``-log sigma(g_pos - theta) - log(1 - sigma(g_neg - theta))``,
    averaged over the examples (written with softplus for stability)."""
    return torch.cat([F.softplus(theta - g_pos), F.softplus(g_neg - theta)]).mean()


@register_rule("ff", "Forward-Forward: per-layer goodness of positive vs negative (label) data")
class ForwardForward(LearningRule):
    """The Forward-Forward algorithm (Hinton, arXiv 2212.13345, Sec. 2 and 3.3).

    Positive data is an image with its true label written into its first pixels; negative data
    is the same image with a wrong label drawn at random (torch's global generator, so a resumed
    run draws the same). Each hidden block maximises the goodness ``G = sum_j y_j^2`` of its
    activities on positive data and minimises it on negative data: the probability that an
    input is positive is ``sigma(G - theta)`` and the block minimises the logistic loss of that
    probability. Its input is detached (no gradient crosses blocks: wiring backward ``none``),
    and every block above the first reads a length-normalised copy of the block below's output
    (``prepare`` puts ``LengthNorm`` in front), so goodness cannot leak upwards. The prediction
    runs the network once per label and picks the label with the highest goodness summed over
    every hidden block but the first (the paper's choice); per-block keys score one block.

    The stack's last block (the architecture's classifier) is not used: it does not run and is
    never trained. Logged: ``loss``, ``g_pos`` and ``g_neg`` (mean goodness) per block.

    Deviations: the paper's MNIST net (4 x 2000 ReLU, 60 epochs, 1.36 % test error) is the
    ``mlp`` arch with ``hidden: [2000, 2000, 2000, 2000]``; the presets use a smaller one.
    Normalisation is to unit RMS (length sqrt(D)), a fixed rescaling of the paper's unit length
    that keeps PyTorch's default init in range. ``goodness: mean`` (sum / width, as several
    reimplementations do) is offered beside the paper's sum. The one-hot label is written with
    the value ``label_value`` on inputs standardised by the data section.
    """

    @dataclass(frozen=True)
    class Config:
        """Options of Forward-Forward."""

        theta: float = 2.0
        """The goodness threshold of the logistic loss."""
        goodness: Literal["sum", "mean"] = "mean"
        """``sum`` of squared activities (the paper) or their ``mean`` (sum / width)."""
        label_value: float = 3.0
        """The value written into the label's pixel (the others get 0); 3 is about the largest
        pixel of standardised MNIST, as the paper writes the label with the brightest value."""
        skip_first: bool = True
        """Leave the first hidden block's goodness out of the prediction (the paper)."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            found = []
            if self.goodness not in ("sum", "mean"):
                found.append(("goodness", f"{self.goodness!r} is invalid: valid: sum, mean"))
            if not self.label_value > 0:
                found.append(("label_value", f"{self.label_value} is invalid: must be > 0"))
            if not self.theta >= 0:
                found.append(("theta", f"{self.theta} is invalid: must be >= 0"))
            return found

    @property
    def wiring(self) -> Wiring:
        """Forward-only: each block learns from its own goodness; nothing goes down."""
        return Wiring(forward="activation", backward="none")

    def prepare(self, stack: BlockStack) -> list[str]:
        """Length-normalise the input of every hidden block but the first."""
        if len(stack) < 2:
            raise ValueError("ff needs at least one hidden block below the classifier block")
        self.num_classes: int = stack.output_shapes[-1][0]
        if math.prod(stack.input_shape) < self.num_classes:
            raise ValueError(f"ff needs at least {self.num_classes} input values for the label")
        for k in range(1, len(stack) - 1):
            stack.blocks[k] = nn.Sequential(LengthNorm(), stack.blocks[k])
        return [f"block {k}: LengthNorm in front" for k in range(1, len(stack) - 1)]

    def transform_batch(self, batch: Batch, step: int) -> Batch:
        """Positives (true label) then negatives (a random wrong label): 2B examples; the
        targets are the labels written in."""
        c = self.num_classes
        wrong = (
            batch.y + torch.randint(1, c, batch.y.shape).to(batch.y.device)
        ) % c  # never the true label
        x = torch.cat([embed_label(batch.x, batch.y, c, self.config.label_value),
                       embed_label(batch.x, wrong, c, self.config.label_value)])  # fmt: skip
        return Batch(x, torch.cat([batch.y, wrong]))

    def active_blocks(self, epoch: int, num_blocks: int) -> range:
        """The hidden blocks: the classifier block does not run."""
        return range(num_blocks - 1)

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """The logistic goodness loss of positives (first half) against negatives."""
        g_pos, g_neg = goodness(ctx.h_out, self.config.goodness).chunk(2)
        loss = ff_loss(g_pos, g_neg, self.config.theta)
        # the mean goodness of each half, logged only (detached: no gradient)
        return LocalLoss({"loss": loss, "g_pos": g_pos.mean().detach(),
                          "g_neg": g_neg.mean().detach()})  # fmt: skip

    def predictions(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], x: Tensor
    ) -> dict[int | None, Tensor]:
        """Per label, the goodness summed over the hidden blocks (None; the first left out
        when ``skip_first``), and each hidden block's own goodness (its index)."""
        hidden = len(stack) - 1
        per_block: list[list[Tensor]] = [[] for _ in range(hidden)]
        for label in range(self.num_classes):
            labels = torch.full((len(x),), label, dtype=torch.long, device=x.device)
            h = embed_label(x, labels, self.num_classes, self.config.label_value)
            for k in range(hidden):
                h = stack.blocks[k](h)
                per_block[k].append(goodness(h, self.config.goodness))
        scores = {k: torch.stack(g, dim=1) for k, g in enumerate(per_block)}
        first = 1 if self.config.skip_first and hidden > 1 else 0
        out: dict[int | None, Tensor] = {k: g for k, g in scores.items()}
        out[None] = torch.stack([scores[k] for k in range(first, hidden)]).sum(0)
        return out
