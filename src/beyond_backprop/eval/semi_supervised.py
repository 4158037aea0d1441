"""``bbp eval --finetune RUN``: SimCLRv2's semi-supervised evaluation of a pretrained run.

On a seeded, class-balanced fraction of the run's training split (``data.labels``): fine-tune
the encoder and the first ``finetune_from`` layers of the projection head with a new linear
classifier (``eval.finetune``); optionally train the same network from a fresh init on the same
labels (the supervised baseline: same architecture, optimizer and budget) and distill the
fine-tuned network into a fresh student on the whole training split without its labels. Test
accuracies go atomically into ``RUN/finetune_f<F>_from<N>.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from beyond_backprop.data.labels import labeled_subset
from beyond_backprop.errors import ConfigError
from beyond_backprop.eval.finetune import (
    accuracy,
    distill,
    finetune_network,
    reinitialized,
    train_supervised,
)
from beyond_backprop.eval.trained import load_trained_run
from beyond_backprop.experiment import Experiment
from beyond_backprop.models.probes import ProbedLocal
from beyond_backprop.models.projection import ProjectionHead
from beyond_backprop.tracking.atomic import atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SemiSupervisedConfig:
    """The options of ``bbp eval --finetune``."""

    label_fraction: float
    """Fraction of the training split that keeps its labels (class-balanced), e.g. 0.01."""
    finetune_from: int = 1
    """Head layers kept under the new classifier: 1 is SimCLRv2's choice, 0 SimCLR's (the
    classifier reads the pooled encoder output)."""
    label_seed: int = 0
    """Seed of the labeled subset (the same seed gives the same labels to every method)."""
    epochs: int = 30
    """Epochs over the labeled examples (fine-tuning and the baseline)."""
    lr: float = 1e-3
    """Adam learning rate (fine-tuning, baseline and distillation)."""
    batch_size: int = 64
    """Batch size (fine-tuning, baseline; distillation uses twice this)."""
    baseline: bool = False
    """Also train the same network from a fresh init on the same labels only."""
    distill: bool = False
    """Also distill the fine-tuned network into a fresh student on the unlabeled examples."""
    distill_epochs: int = 5
    """Epochs over the whole training split (without labels) for the student."""
    temperature: float = 1.0
    """Temperature of the teacher's and the student's label distributions."""
    alpha: float = 1.0
    """Weight of the distillation loss; ``1 - alpha`` weighs the labeled cross-entropy."""

    def problems(self) -> list[str]:
        """One line per invalid option."""
        found = []
        if not 0 < self.label_fraction <= 1:
            found.append(f"--label-fraction {self.label_fraction} is invalid: must be in (0, 1]")
        if self.finetune_from < 0:
            found.append(f"--finetune-from {self.finetune_from} is invalid: must be >= 0")
        for name in ("epochs", "batch_size", "distill_epochs"):
            if getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                found.append(f"{flag} {getattr(self, name)} is invalid: must be >= 1")
        for name, value in (("lr", self.lr), ("temperature", self.temperature)):
            if value <= 0:
                found.append(f"--{name} {value} is invalid: must be > 0")
        if not 0 <= self.alpha <= 1:
            found.append(f"--alpha {self.alpha} is invalid: must be in [0, 1]")
        return found


def result_file(cfg: SemiSupervisedConfig) -> str:
    """The file a fine-tuning writes into the run directory."""
    return f"finetune_f{cfg.label_fraction:g}_from{cfg.finetune_from}.json"


def top_head(experiment: Experiment) -> ProjectionHead:
    """The projection head on the top encoder block (simclr, loco), or a ConfigError."""
    local = experiment.locals[len(experiment.stack) - 2]
    head = local.objective if isinstance(local, ProbedLocal) else None
    if not isinstance(head, ProjectionHead):
        raise ConfigError([
            f"fine-tuning needs a projection head on the top encoder block (rules simclr, "
            f"loco); this run's rule is {experiment.config.rule.name!r}"
        ])  # fmt: skip
    return head


def finetune_run(run_dir: str | Path, cfg: SemiSupervisedConfig) -> dict[str, Any]:
    """Fine-tune (and optionally baseline and distill) the run's latest checkpoint, score
    each network on the run's evaluation split, write the result file; returns what it
    wrote."""
    if problems := cfg.problems():
        raise ConfigError(problems)
    run = load_trained_run(run_dir)
    path, step, experiment = run.path, run.step, run.experiment
    config = experiment.config
    head = top_head(experiment)
    if cfg.finetune_from >= head.depth:
        raise ConfigError([
            f"--finetune-from {cfg.finetune_from} is invalid: this run's head has "
            f"{head.depth} layers, so keep 0 to {head.depth - 1} of them"
        ])  # fmt: skip
    data = experiment.data
    labeled = labeled_subset(data.train, cfg.label_fraction, data.num_classes, cfg.label_seed)
    seed = config.seed
    net = finetune_network(
        experiment.stack.blocks[:-1], head, cfg.finetune_from, data.num_classes, seed
    )
    accuracies, seconds = {}, {}

    def scored(name: str, trained: nn.Module, train: Callable[[], None]) -> None:
        started = time.perf_counter()
        train()
        accuracies[name] = accuracy(trained, data.test)
        seconds[name] = time.perf_counter() - started

    fresh = reinitialized(net, seed + 1) if cfg.baseline else None

    def supervise(target: nn.Module) -> None:
        train_supervised(
            target, labeled, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed
        )

    scored("finetune", net, lambda: supervise(net))
    if fresh is not None:
        scored("baseline", fresh, lambda: supervise(fresh))
    if cfg.distill:
        student = reinitialized(net, seed + 2)
        scored("distill", student, lambda: distill(
            net, student, data.train.x, labeled, temperature=cfg.temperature, alpha=cfg.alpha,
            epochs=cfg.distill_epochs, batch_size=2 * cfg.batch_size, lr=cfg.lr, seed=seed,
        ))  # fmt: skip
    for name, value in accuracies.items():
        log.info("%s: %s accuracy %.4f", name, data.eval_split, value)
    result = {
        "step": step,
        "split": data.eval_split,
        "head_depth": head.depth,
        "labels": len(labeled),
        "unlabeled_examples": len(data.train),
        **dataclasses.asdict(cfg),
        "threads": torch.get_num_threads(),
        "accuracy": accuracies,
        "seconds": seconds,
    }
    atomic_write_json(path / result_file(cfg), result)
    return result
