"""Direct feedback alignment: the output error goes straight to every block through fixed B_k."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beyond_backprop.autograd.alignment import (
    angle_degrees,
    block_params,
    grad_angles,
    grads_or_zeros,
    split_per_block,
    untouched,
)
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import (
    Batch,
    BlockContext,
    LearningRule,
    LocalLoss,
    Objective,
    OutputGradient,
    Wiring,
)
from beyond_backprop.rules.registry import register_rule

PROJECTED = "projected_error"
"""The outbox key of the shared projection ``e B`` (blocks below slice it)."""


class DirectFeedback(nn.Module):
    """Block k's fixed feedback: maps the output error e (N, classes) to its output's shape.

    ``feedback`` is a (classes, columns) buffer; the block uses ``width`` columns from
    ``offset`` on (``width`` = the number of elements of one block output). In the shared form
    every block holds the same buffer, sized for the widest block, and starts at column 0
    (arXiv 2006.12878's single projection); in the sliced form the buffer is as wide as all
    blocks together and each block owns its own columns.
    """

    feedback: Tensor

    def __init__(
        self, feedback: Tensor, out_shape: tuple[int, ...], reach: int, offset: int = 0
    ) -> None:
        super().__init__()
        self.register_buffer("feedback", feedback)
        self.out_shape = out_shape
        self.width = math.prod(out_shape)
        self.offset = offset
        self.end = offset + self.width
        """The columns this block reads end here."""
        self.reach = reach
        """Columns needed by this block and every block below it (shared and sliced forms)."""

    def project(self, error: Tensor, columns: int) -> Tensor:
        """``e B[:, :columns]``: one matmul."""
        return error @ self.feedback[:, :columns]

    def signal(self, projected: Tensor) -> Tensor:
        """This block's slice of a projection, shaped like the block's output."""
        return projected[:, self.offset : self.end].reshape(-1, *self.out_shape)


@register_rule("dfa", "direct feedback alignment: output error sent to every block via fixed B_k")
class DirectFeedbackAlignment(LearningRule):
    """Direct feedback alignment (Nøkland, arXiv 1609.01596, Sec. 2, eq. for delta a_k), with
    the single shared projection of Launay, Poli, Boniface and Krzakala (arXiv 2006.12878,
    Sec. 3 and their TinyDFA implementation).

    Every hidden layer learns from the output error e = dL/d(logits) projected by a fixed random
    matrix: ``delta a_k = (B_k e) * f'(a_k)``, ``dW_k = delta a_k h_{k-1}^T``. In this library
    a block ends with its nonlinearity (mlp: Linear [-> BN] -> act; cnn: conv [-> BN] -> ReLU
    [-> pool]), so the rule injects ``B_k e`` as the gradient of the block's output and autograd
    multiplies by f'(a_k) (and routes through BN / pooling) inside the block: exactly the
    paper's update for one-layer blocks. The top block learns from the task loss and puts e in
    its ``outbox``; no block sends a gradient down (wiring ``output_error``: backward unlocked).

    ``projection: shared`` draws one matrix B (classes x widest block output) and gives block k
    its first ``width_k`` columns; the first hidden block to run projects e once for itself and
    every block below and passes ``e B`` down, so a step costs one matmul, not one per block.
    In the shared form blocks of equal width get the very same matrix (their feedback is
    identical, cosine 1 between blocks); ``projection: sliced`` draws one matrix as wide as all
    hidden blocks together and gives each block its own columns, so every B_k is independent
    and a step still costs one matmul. ``projection: per_block`` draws an independent B_k per
    block (Nøkland's form, one matmul per block). With B_k set to the slices of the shared B
    the per-block and shared forms give the same updates (tested). Diagnostics: per
    hidden block ``grad_angle`` (update vs true gradient) and ``signal_angle`` (B_k e vs the
    true dL/dh_k), in degrees.

    Deviations: blocks with several layers (the cnn's classifier block) learn by backprop inside
    the block; B ~ U(-scale/sqrt(columns), scale/sqrt(columns)) (TinyDFA draws U(-1, 1) and
    divides the projection by sqrt(columns): the same update); the papers' tanh networks and
    training lengths are set in the presets, not here.
    """

    @dataclass(frozen=True)
    class Config:
        """How the feedback matrices are drawn and applied."""

        projection: Literal["shared", "sliced", "per_block"] = "shared"
        """``shared``: one B whose first columns every block uses, one matmul per step
        (2006.12878; equal-width blocks share their B_k); ``sliced``: one B, disjoint columns
        per block, one matmul; ``per_block``: an independent B_k per block, one matmul per
        block (1609.01596)."""
        scale: float = 1.0
        """B ~ U(-scale/sqrt(columns), scale/sqrt(columns)), columns = B's output width."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            if not self.scale > 0:
                return [("scale", f"{self.scale} is invalid: must be > 0")]
            return []

    default_wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="output_error")

    def _draw(self, classes: int, columns: int) -> Tensor:
        bound = self.config.scale / math.sqrt(columns)
        # cpu: drawn when the locals are built, moved with them
        return torch.empty(classes, columns).uniform_(-bound, bound)

    def build_locals(self, stack: BlockStack) -> list[nn.Module | None]:
        """One ``DirectFeedback`` per hidden block (sharing one buffer in the shared form)."""
        if len(stack) < 2:
            raise ValueError("dfa needs at least two blocks (hidden blocks to send the error to)")
        classes = math.prod(stack.output_shapes[-1])
        shapes = stack.output_shapes[:-1]
        widths = [math.prod(s) for s in shapes]
        reach = [max(widths[: k + 1]) for k in range(len(widths))]
        locals_: list[nn.Module | None] = []
        if self.config.projection == "shared":
            shared = self._draw(classes, max(widths))
            locals_ = [DirectFeedback(shared, s, r) for s, r in zip(shapes, reach, strict=True)]
        elif self.config.projection == "sliced":
            ends = [sum(widths[: k + 1]) for k in range(len(widths))]
            sliced = self._draw(classes, ends[-1])
            locals_ = [
                DirectFeedback(sliced, s, end, end - w)
                for s, w, end in zip(shapes, widths, ends, strict=True)
            ]
        else:
            locals_ = [
                DirectFeedback(self._draw(classes, w), s, w)
                for s, w in zip(shapes, widths, strict=True)
            ]
        return [*locals_, None]

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """The task loss (and e for the blocks below) at the top; B_k e everywhere else."""
        if ctx.is_last:
            loss = F.cross_entropy(ctx.h_out, ctx.batch.y)
            # e = dL/dlogits, from the loss itself: exact for any reduction
            (error,) = torch.autograd.grad(loss, ctx.h_out, retain_graph=True)
            return LocalLoss({"loss": loss}, outbox={"output_error": error})
        local = ctx.local
        assert isinstance(local, DirectFeedback)
        error = ctx.inbox["output_error"]
        if self.config.projection == "per_block":
            return OutputGradient(local.signal(local.project(error, local.end)))
        projected = ctx.inbox.get(PROJECTED)
        if projected is not None and projected.shape[1] >= local.end:
            return OutputGradient(local.signal(projected))
        # the highest hidden block projects once for itself and all blocks below it
        projected = local.project(error, local.reach)
        return OutputGradient(local.signal(projected), outbox={PROJECTED: projected})

    def diagnostics(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], batch: Batch, step: int
    ) -> dict[tuple[int | None, str], float]:
        """Per hidden block: the angle of the DFA update, and of B_k e, to backprop's."""
        params = block_params(stack)
        flat = [p for block in params for p in block]
        hidden = range(len(stack) - 1)
        with untouched(stack):
            outputs = []
            x = batch.x
            for block in stack.blocks:
                x = block(x)
                outputs.append(x)
            loss = F.cross_entropy(outputs[-1], batch.y)
            grads = grads_or_zeros(loss, [*flat, *outputs])
            true = split_per_block(grads[: len(flat)], params)
            true_signals, error = grads[len(flat) : -1], grads[-1]
            ours, signals = [], []
            for k in hidden:
                local = locals_[k]
                assert isinstance(local, DirectFeedback)
                signal = local.signal(local.project(error, local.end))
                signals.append(signal)
                ours.append(grads_or_zeros(outputs[k], params[k], signal))
        figures = grad_angles(ours, true, hidden)
        for k in hidden:
            figures[(k, "signal_angle")] = angle_degrees(signals[k], true_signals[k])
        return figures
