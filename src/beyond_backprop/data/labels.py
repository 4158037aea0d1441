"""Seeded, class-balanced labeled subsets for semi-supervised evaluation."""

from __future__ import annotations

import torch

from beyond_backprop.data.base import TensorSplit
from beyond_backprop.errors import DataError


def labeled_subset(
    split: TensorSplit, fraction: float, num_classes: int, seed: int = 0
) -> TensorSplit:
    """The labeled examples of a semi-supervised setting: ``fraction`` of ``split``, the same
    number per class (``round(fraction * len(split) / num_classes)``, at least 1), drawn with a
    generator seeded by ``seed`` alone, kept in their order in ``split``.

    Class balance follows the ImageNet 1 % / 10 % subsets of SimCLRv2 (arXiv 2006.10029,
    Sec. 3), which hold about the same number of images per class.

    Raises:
        DataError: ``fraction`` is not in (0, 1], or a class has fewer examples than asked.
    """
    if not 0 < fraction <= 1:
        raise DataError(f"label fraction {fraction} is invalid: must be in (0, 1]")
    per_class = max(1, round(fraction * len(split) / num_classes))
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in range(num_classes):
        members = (split.y == label).nonzero().flatten()
        if len(members) < per_class:
            raise DataError(
                f"label fraction {fraction} asks {per_class} examples of class {label}, "
                f"which has {len(members)}"
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    index = torch.cat(chosen).sort().values
    return TensorSplit(split.x[index], split.y[index])
