"""The data section of an experiment config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from beyond_backprop.data.augment import AugmentConfig
from beyond_backprop.data.registry import DATASETS


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, which split, and how it is batched."""

    name: str = "mnist"
    """A registered dataset (``bbp list datasets``)."""
    split: Literal["standard", "validation"] = "standard"
    """``standard``: train on the full training set, evaluate on the test set (MNIST 60k/10k).
    ``validation``: train on the training set less a held-out part, evaluate on that part
    (MNIST 50k/10k; the test set stays untouched)."""
    batch_size: int = 128
    """Training batch size."""
    eval_batch_size: int = 1000
    """Batch size for evaluation (no gradients, so larger is faster)."""
    train_limit: int | None = None
    """Use only the first N training examples (smoke runs); None uses all."""
    test_limit: int | None = None
    """Evaluate on only the first N evaluation examples; None uses all."""
    root: str | None = None
    """Where the dataset's files are, when not the default place (e.g. a CIFAR-10 folder)."""
    normalize: bool = True
    """Standardise inputs with the training set's per-channel mean and std."""
    on_device: Literal["auto", True, False] = "auto"
    """Keep the whole dataset on the training device (no copy per batch): ``auto`` does when
    the device is a GPU and the data take at most a quarter of its memory."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Random crop and flip of every training batch (off by default; evaluation data is never
    augmented)."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        if self.name not in DATASETS:
            found.append(("name", DATASETS.unknown_message(self.name)))
        for key in ("batch_size", "eval_batch_size", "train_limit", "test_limit"):
            value = getattr(self, key)
            if value is not None and value < 1:
                found.append((key, f"{value} is invalid: must be >= 1"))
        found += [(f"augment.{key}", message) for key, message in self.augment.problems()]
        return found
