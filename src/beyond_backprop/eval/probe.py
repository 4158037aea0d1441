"""Offline linear probes of a finished run: ``bbp eval --probe RUN``.

After training, fresh linear classifiers are fitted on frozen features of the training split
and scored on the evaluation split, for any run, self-supervised or not. Features are those of
the online probes (``models/probes.py``): image features average-pooled to at most
``pool x pool`` cells, flattened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beyond_backprop.data import TensorSplit, iter_batches
from beyond_backprop.eval.trained import load_trained_run
from beyond_backprop.models.probes import encoder_features, pooled
from beyond_backprop.tracking.atomic import atomic_write_json

log = logging.getLogger(__name__)

PROBE_FILE = "probe.json"
"""What ``probe_run`` writes into the run directory."""


def probe_run(
    run_dir: str | Path,
    *,
    epochs: int = 10,
    pool: int = 4,
    lr: float = 1e-2,
    train_limit: int | None = None,
) -> dict[str, Any]:
    """Fit a linear probe per encoder block on the frozen features of the run's latest
    checkpoint (training split, or its first ``train_limit`` examples), score it on the run's
    evaluation split, and write ``RUN/probe.json``; returns what it wrote."""
    run = load_trained_run(run_dir, train_limit)
    path, step, experiment = run.path, run.step, run.experiment
    experiment.stack.eval()  # frozen features: BatchNorm uses its running statistics
    rule, stack = experiment.rule, experiment.stack
    accuracies = fit_probes(
        lambda x: encoder_features(rule, stack, x),
        experiment.data.train,
        experiment.data.test,
        pool=pool,
        epochs=epochs,
        lr=lr,
        seed=experiment.config.seed,
    )
    result = {
        "step": step,
        "split": experiment.data.eval_split,
        "train_examples": len(experiment.data.train),
        "epochs": epochs,
        "pool": pool,
        "lr": lr,
        "threads": torch.get_num_threads(),
        "accuracy": {str(k): v for k, v in accuracies.items()},
    }
    atomic_write_json(path / PROBE_FILE, result)
    return result


def fit_probes(
    features_of: Callable[[Tensor], list[Tensor]],
    train: TensorSplit,
    test: TensorSplit,
    *,
    pool: int = 4,
    epochs: int = 10,
    lr: float = 1e-2,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[int, float]:
    """Offline linear probes: test accuracy per encoder block.

    Features are computed once without gradients (the caller puts the model in eval mode),
    pooled, standardised with the training features' mean and std, and a linear classifier per
    block is trained with Adam on them for ``epochs`` epochs. Seeded and self-contained: the
    global generator is left as it was.
    """
    train_feats = _collect(features_of, train, pool)
    test_feats = _collect(features_of, test, pool)
    num_classes = int(max(train.y.max(), test.y.max())) + 1
    accuracies = {}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for k, (f_train, f_test) in enumerate(zip(train_feats, test_feats, strict=True)):
            mean, std = f_train.mean(0), f_train.std(0) + 1e-6
            f_train, f_test = (f_train - mean) / std, (f_test - mean) / std
            probe = nn.Linear(f_train.shape[1], num_classes)
            optimizer = torch.optim.Adam(probe.parameters(), lr=lr)
            for _ in range(epochs):
                # cpu: a batch order (indices into CPU features)
                for idx in torch.randperm(len(f_train)).split(batch_size):
                    optimizer.zero_grad()
                    F.cross_entropy(probe(f_train[idx]), train.y[idx]).backward()
                    optimizer.step()
            with torch.no_grad():
                correct = (probe(f_test).argmax(1) == test.y).float().mean()
            accuracies[k] = float(correct)
            log.info("probe block %d: test accuracy %.4f", k, accuracies[k])
    return accuracies


def _collect(
    features_of: Callable[[Tensor], list[Tensor]], split: TensorSplit, pool: int
) -> list[Tensor]:
    chunks: list[list[Tensor]] = []
    with torch.no_grad():
        for x, _ in iter_batches(split, 500):
            chunks.append([pooled(h, pool) for h in features_of(x)])
    return [torch.cat(per_block) for per_block in zip(*chunks, strict=True)]
