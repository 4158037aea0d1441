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

    @classmethod
    def from_sequential(
        cls,
        model: nn.Sequential | Sequence[nn.Module],
        split_points: Sequence[int],
        input_shape: tuple[int, ...],
    ) -> BlockStack:
        """Your own network as a stack, cut before the given children.

        The stack's forward pass is the model's own (the same modules, in the same order, so
        the same parameters and the same results). Any model whose forward pass is a chain of
        children can be given as the list of them, e.g. a torchvision-style ResNet as
        ``[m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4,
        m.avgpool, nn.Flatten(), m.fc]`` (the flatten its ``forward`` does inline).

        Args:
            model: an ``nn.Sequential`` or a list of modules applied one after another; the
                last one must output the class logits.
            split_points: the index of the child that starts each block after the first,
                strictly increasing within ``1 .. len(model) - 1`` (``[4, 8]`` on the list
                above: the stem and ``layer1``, ``layer2`` to ``layer4``, the classifier);
                empty: one block.
            input_shape: one example's shape, without the batch dimension.
        Raises:
            ValueError: for split points out of range or not increasing (naming the value
                and the valid range).
        """
        children = list(model.children() if isinstance(model, nn.Sequential) else model)
        n = len(children)
        points = list(split_points)
        if not children:
            raise ValueError("from_sequential needs at least one module")
        for k, point in enumerate(points):
            low = points[k - 1] + 1 if k else 1
            if not isinstance(point, int) or not low <= point <= n - 1:
                valid = f"{low}..{n - 1}" if low <= n - 1 else "none"
                raise ValueError(
                    f"split_points[{k}] = {point!r} is invalid: split points must increase "
                    f"strictly within 1..{n - 1} (the model has {n} children); valid here: "
                    f"{valid}"
                )
        starts = [0, *points]
        ends = [*points, n]
        blocks: list[nn.Module] = [
            children[a] if b - a == 1 else nn.Sequential(*children[a:b])
            for a, b in zip(starts, ends, strict=True)
        ]
        return cls(blocks, input_shape)

    def _infer_shapes(self) -> list[tuple[int, ...]]:
        was_training = self.training
        self.eval()  # eval mode: BatchNorm uses (and does not update) its running statistics
        shapes = []
        with torch.no_grad():
            # cpu: the shape dry run at build time
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
