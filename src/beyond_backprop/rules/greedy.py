"""Greedy layerwise learning: blocks trained one after another, earlier ones frozen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from torch import Tensor, nn

from beyond_backprop.models.grouping import group_blocks
from beyond_backprop.models.heads import HeadConfig, build_heads, head_loss, head_predictions
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import BlockContext, LearningRule, LocalLoss, Objective, Wiring
from beyond_backprop.rules.registry import register_rule


@register_rule("greedy", "greedy layerwise learning: one block at a time, earlier ones frozen")
class GreedyLayerwise(LearningRule):
    """Greedy layerwise learning (Belilovsky, Eickenberg and Oyallon, arXiv 1812.11446).

    Block j is trained alone for ``epochs_per_block`` epochs on the cross-entropy of an
    auxiliary classifier on its output (Sec. 3.1, the auxiliary problem of depth k), with the
    blocks below it frozen (they run without gradients, in eval mode) and the blocks above it
    not yet used; then block j+1 starts from block j's frozen output (Algorithm 1). The last
    block outputs the logits and is its own classifier; the network's prediction is its output.

    Deviations: the paper's invertible downsampling and its ImageNet-sized widths are left out;
    the auxiliary network is the paper's family (``k - 1`` 3x3 convolutions, averaging to 2x2,
    a linear layer) with ``head.depth`` as k. Training length is ``epochs_per_block`` times the
    number of blocks; ``train.epochs`` is not used.
    """

    @dataclass(frozen=True)
    class Config:
        """Options of greedy layerwise learning."""

        epochs_per_block: int = 1
        """Epochs each block trains for before the next one starts."""
        head: HeadConfig = field(default_factory=lambda: HeadConfig("conv", depth=2, width=64))
        """The auxiliary classifier (``kind: conv``, ``depth`` = the paper's k)."""
        blocks: tuple[int, ...] = ()
        """Architecture block indices that start a new block (after the first); empty: the
        architecture's blocks."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            if self.epochs_per_block < 1:
                return [("epochs_per_block", f"{self.epochs_per_block} is invalid: must be >= 1")]
            return []

    # stale_ok is False: one block learns at a time, so there is nothing to run asynchronously
    wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="none", stale_ok=False)

    def prepare(self, stack: BlockStack) -> list[str]:
        """Merge architecture blocks into the configured blocks."""
        return group_blocks(stack, self.config.blocks)

    def build_locals(self, stack: BlockStack) -> list[nn.Module | None]:
        """An auxiliary head on every block but the last."""
        return build_heads(stack, self.config.head)

    def total_epochs(self, epochs: int, num_blocks: int) -> int:
        """``epochs_per_block`` for every block, one block after another."""
        return self.config.epochs_per_block * num_blocks

    def active_blocks(self, epoch: int, num_blocks: int) -> Sequence[int]:
        """The one block whose turn it is."""
        return [min(epoch // self.config.epochs_per_block, num_blocks - 1)]

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """Cross-entropy of the block's auxiliary head (the logits for the last block)."""
        return LocalLoss({"loss": head_loss(ctx)})

    def predictions(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], x: Tensor
    ) -> dict[int | None, Tensor]:
        """The last block's output, and every block's head."""
        return head_predictions(stack, locals_, x)
