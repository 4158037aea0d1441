"""The registry of dataset loaders: ``DATASETS`` maps a name to a function that takes the
``DataConfig`` and returns the ``DatasetSplits``.

Its own module so that ``config.py`` (which checks ``data.name`` against it) and ``base.py``
(the tensors) import each other in neither direction.
"""

from __future__ import annotations

from collections.abc import Callable

from beyond_backprop.data.base import DatasetSplits
from beyond_backprop.registry import Registry

DatasetLoader = Callable[..., DatasetSplits]
"""A loader, called with the ``DataConfig`` (typed loosely here: the config module imports this
one to validate ``data.name``)."""
DATASETS: Registry[DatasetLoader] = Registry("dataset")
register_dataset = DATASETS.register
