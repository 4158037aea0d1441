"""Regroup a stack's blocks, so a rule can choose which layer boundaries form its blocks.

Local-loss rules put one loss on each block; the architecture's blocks are the finest units
(one conv stage each in ``cnn``). ``group_blocks`` merges consecutive blocks into one, in place,
from the boundaries a rule's ``blocks`` option gives (the same form as
``BlockStack.partition``: the index of the first block of every group after the first).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from beyond_backprop.models.stack import BlockStack


def group_blocks(stack: BlockStack, starts: Sequence[int]) -> list[str]:
    """Merge the stack's blocks into the groups that ``starts`` begins, in place.

    Args:
        stack: the stack to regroup; its parameters stay the same objects.
        starts: the first block of every group after the first, strictly increasing within
            ``1 .. len(stack) - 1``; empty leaves the stack as it is.
    Returns:
        One line per merged group (for the run's prepare report).
    """
    if not starts:
        return []
    groups = stack.partition(list(starts))
    old = list(stack.blocks)
    merged: list[nn.Module] = [
        old[g.start] if len(g) == 1 else nn.Sequential(*(old[k] for k in g)) for g in groups
    ]
    stack.blocks = nn.ModuleList(merged)
    stack.output_shapes = [stack.output_shapes[g.stop - 1] for g in groups]
    return [
        f"block {i} = architecture blocks {g.start}..{g.stop - 1}"
        for i, g in enumerate(groups)
        if len(g) > 1
    ]
