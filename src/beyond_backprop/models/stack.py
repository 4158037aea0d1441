"""`BlockStack`: a network as an ordered list of blocks, the unit every rule and engine shares."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class BlockStack(nn.Module):
    """An ordered stack of blocks; the last block outputs the class logits.

    Output shapes are inferred once by a dry run on a zero batch of two examples (two, so that
    BatchNorm in training mode accepts it); the dry run leaves BatchNorm statistics untouched.

    Args:
        blocks: the blocks, applied in order.
        input_shape: the shape of one input example, without the batch dimension.
    """

    def __init__(self, blocks: Sequence[nn.Module], input_shape: tuple[int, ...]) -> None:
        super().__init__()
        if not blocks:
            raise ValueError("a BlockStack needs at least one block")
        self.blocks = nn.ModuleList(blocks)
        self.input_shape = tuple(input_shape)
        self.output_shapes = self._infer_shapes()

    def _infer_shapes(self) -> list[tuple[int, ...]]:
        was_training = self.training
        self.eval()  # eval mode: BatchNorm uses (and does not update) its running statistics
        shapes = []
        with torch.no_grad():
            h = torch.zeros(2, *self.input_shape)
            for block in self.blocks:
                h = block(h)
                shapes.append(tuple(h.shape[1:]))
        self.train(was_training)
        return shapes

    def __len__(self) -> int:
        return len(self.blocks)

    def forward(self, x: Tensor) -> Tensor:
        """The logits of the whole stack."""
        return self.forward_range(x, 0, len(self.blocks))

    def forward_range(self, x: Tensor, start: int, stop: int) -> Tensor:
        """Apply blocks ``start`` .. ``stop - 1`` to ``x`` (the output of block ``start - 1``)."""
        for block in self.blocks[start:stop]:
            x = block(x)
        return x

    def input_shape_of(self, k: int) -> tuple[int, ...]:
        """The shape of block ``k``'s input."""
        return self.input_shape if k == 0 else self.output_shapes[k - 1]

    def partition(self, stages: int | Sequence[int]) -> list[range]:
        """Split the blocks into contiguous stages.

        Args:
            stages: a number of stages (blocks spread as evenly as possible, earlier stages
                taking the remainder), or explicit boundaries: the index of the first block of
                every stage after the first, e.g. ``[2, 5]`` for three stages of an 8-block stack.
        Returns:
            One ``range`` of block indices per stage.
        """
        n = len(self.blocks)
        if isinstance(stages, int):
            if not 1 <= stages <= n:
                raise ValueError(f"cannot split {n} blocks into {stages} stages (valid: 1..{n})")
            size, extra = divmod(n, stages)
            starts = [k * size + min(k, extra) for k in range(stages)]
        else:
            starts = [0, *stages]
            if any(b <= a for a, b in itertools.pairwise(starts)) or starts[-1] >= n:
                raise ValueError(
                    f"stage boundaries {list(stages)} must increase strictly within 1..{n - 1}"
                )
        ends = [*starts[1:], n]
        return [range(a, b) for a, b in zip(starts, ends, strict=True)]
