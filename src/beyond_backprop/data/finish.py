"""The last step shared by every dataset loader: split choice, limits and standardisation."""

from __future__ import annotations

import torch

from beyond_backprop.data.base import DatasetSplits, TensorSplit, standardize
from beyond_backprop.data.config import DataConfig
from beyond_backprop.errors import DataError


def finalize(
    name: str,
    train: TensorSplit,
    test: TensorSplit,
    num_classes: int,
    cfg: DataConfig,
    *,
    val: TensorSplit | None = None,
    holdout: int | None = None,
) -> DatasetSplits:
    """Build the ``DatasetSplits`` that ``cfg`` asks for.

    Args:
        name: The dataset's registered name.
        train: The training examples (without ``val`` when the dataset has its own).
        test: The test examples; evaluated only for ``split="standard"``.
        num_classes: Number of label values.
        cfg: ``split`` "standard" trains on ``train`` (+ ``val``) and evaluates on ``test``;
            "validation" trains on ``train`` and evaluates on ``val``, or when there is no
            ``val``, on the last ``holdout`` training examples (default: one sixth).
            Then ``train_limit``/``test_limit`` keep the first N of each, and ``normalize``
            standardises with the (limited) training split's per-channel statistics.
        val: A dataset's own validation split, if it has one.
        holdout: How many training examples to hold out when there is no ``val``.
    """
    if cfg.split == "standard":
        if val is not None:
            train = TensorSplit(torch.cat([train.x, val.x]), torch.cat([train.y, val.y]))
        eval_split = "test"
    elif cfg.split == "validation":
        if val is None:
            n_hold = len(train) // 6 if holdout is None else holdout
            if not 0 < n_hold < len(train):
                raise DataError(
                    f"{name}: cannot hold out {n_hold} of {len(train)} training examples for "
                    "validation; use data.split=standard"
                )
            cut = len(train) - n_hold
            val = TensorSplit(train.x[cut:], train.y[cut:])
            train = TensorSplit(train.x[:cut], train.y[:cut])
        test = val
        eval_split = "validation"
    else:
        raise DataError(f"data.split {cfg.split!r} is not 'standard' or 'validation'")
    splits = DatasetSplits(
        name,
        _limit(train, cfg.train_limit, "train_limit"),
        _limit(test, cfg.test_limit, "test_limit"),
        num_classes,
        eval_split,
    )
    return standardize(splits) if cfg.normalize else splits


def _limit(split: TensorSplit, n: int | None, field: str) -> TensorSplit:
    """The first ``n`` examples, copied so the full tensors can be freed."""
    if n is None or n >= len(split):
        return split
    if n < 1:
        raise DataError(f"data.{field} must be a positive number of examples or null, got {n}")
    head = split.head(n)
    return TensorSplit(head.x.clone(), head.y.clone())
