"""What the auxiliary-head rules share (``greedy``, ``dgl``, ``local_parallel``): a block
learns from the cross-entropy of a small classifier on its output (``models/heads.py``), the
last block from its own logits; the network's prediction is the last block's output, and each
head's is scored beside it (Belilovsky et al., arXiv 1812.11446, Sec. 3.1; 1901.08164, Sec. 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from beyond_backprop.models.grouping import group_blocks
from beyond_backprop.models.heads import head_predictions
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import BlockContext, LearningRule


def head_loss(ctx: BlockContext) -> Tensor:
    """Cross-entropy of block ``ctx.index``'s own prediction: its head on its output, or its
    output itself when it is the last block (which outputs the logits)."""
    if ctx.is_last:
        return F.cross_entropy(ctx.h_out, ctx.batch.y)
    if ctx.local is None:
        raise ValueError(f"block {ctx.index} has no auxiliary head to learn from")
    return F.cross_entropy(ctx.local(ctx.h_out), ctx.batch.y)


class AuxiliaryHeadRule(LearningRule):
    """Base of the auxiliary-head rules; their ``Config`` has ``head`` (a ``HeadConfig``) and
    ``blocks`` (the architecture blocks that start a new block)."""

    def prepare(self, stack: BlockStack) -> list[str]:
        """Merge architecture blocks into the configured blocks."""
        return group_blocks(stack, self.config.blocks)

    def predictions(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], x: Tensor
    ) -> dict[int | None, Tensor]:
        """The last block's output, and every block's head."""
        return head_predictions(stack, locals_, x)
