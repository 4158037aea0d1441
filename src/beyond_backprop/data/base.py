"""In-memory datasets as tensors, and seeded batch order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class TensorSplit:
    """One split of a dataset held whole in memory: ``x`` float32 (N, C, H, W) or (N, D),
    ``y`` int64 (N,)."""

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has {self.x.shape[0]} rows but y has {self.y.shape[0]}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device) -> TensorSplit:
        """The split on ``device``."""
        return TensorSplit(self.x.to(device), self.y.to(device))

    def head(self, n: int | None) -> TensorSplit:
        """The first ``n`` examples (all when ``n`` is None)."""
        return self if n is None else TensorSplit(self.x[:n], self.y[:n])


@dataclass(frozen=True)
class DatasetSplits:
    """What a dataset loader returns: the split to train on and the split to evaluate on."""

    name: str
    train: TensorSplit
    test: TensorSplit
    num_classes: int
    eval_split: str = "test"
    """Which split ``test`` holds: "test" or "validation" (when ``DataConfig.split`` asks)."""

    def to(self, device: torch.device) -> DatasetSplits:
        """Both splits on ``device``."""
        return replace(self, train=self.train.to(device), test=self.test.to(device))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example, without the batch dimension."""
        return tuple(self.train.x.shape[1:])


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The permutation of ``n`` training examples used in ``epoch``: a pure function of
    (seed, epoch), so a resumed run (and every stage of a staged run) draws the same order
    without carrying generator state."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def iter_batches(
    split: TensorSplit, batch_size: int, order: Tensor | None = None, start: int = 0
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches of ``split`` in ``order`` (identity when None), beginning at batch ``start``;
    the last batch may be smaller, and a last batch of one example joins the batch before it
    (batch norm cannot normalise a single example in training mode)."""
    n = len(split)
    count = batches_per_epoch(n, batch_size)
    for k in range(start, count):
        begin = k * batch_size
        end = n if k == count - 1 else begin + batch_size
        if order is None:
            yield split.x[begin:end], split.y[begin:end]
        else:
            index = order[begin:end]
            yield split.x[index], split.y[index]


def batches_per_epoch(n: int, batch_size: int) -> int:
    """How many batches ``iter_batches`` yields for ``n`` examples (a lone last example
    makes no batch of its own)."""
    full, rest = divmod(n, batch_size)
    return full if rest == 1 and full > 0 else full + (rest > 0)


def standardize(splits: DatasetSplits) -> DatasetSplits:
    """Standardise every split with the training split's per-channel mean and std."""
    x = splits.train.x
    dims = [0, *range(2, x.dim())]
    mean = x.mean(dim=dims, keepdim=True)[0:1]
    std = x.std(dim=dims, keepdim=True)[0:1].clamp_min(1e-8)

    def apply(split: TensorSplit) -> TensorSplit:
        return TensorSplit((split.x - mean) / std, split.y)

    return DatasetSplits(
        splits.name, apply(splits.train), apply(splits.test), splits.num_classes, splits.eval_split
    )
