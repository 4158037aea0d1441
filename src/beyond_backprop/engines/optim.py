"""Per-block optimizers and the learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from beyond_backprop.config.optim import OptimConfig


def build_optimizer(params: Iterable[nn.Parameter], config: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer ``config`` names, over ``params``."""
    params = list(params)
    if config.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    optimizer = torch.optim.AdamW if config.name == "adamw" else torch.optim.Adam
    return optimizer(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


def lr_at(step: int, total_steps: int, config: OptimConfig) -> float:
    """The learning rate at ``step`` of ``total_steps``: a pure function of the step, so a
    resumed run needs no scheduler state."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, step / max(1, total_steps))
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * progress))
    if config.schedule == "step":
        return config.lr * config.gamma ** sum(progress >= m for m in config.milestones)
    return config.lr


class BlockOptimizers:
    """One optimizer per block, over the block's parameters and its local module's (None for
    a block without parameters); the learning rate is set every step (``lr_at``)."""

    def __init__(self, parameters: Iterable[list[nn.Parameter]], config: OptimConfig) -> None:
        self.optimizers = [build_optimizer(p, config) if p else None for p in parameters]

    def prepare(self, blocks: Iterable[int], lr: float) -> None:
        """Set this step's learning rate and clear the gradients of ``blocks``."""
        for k in blocks:
            optimizer = self.optimizers[k]
            if optimizer is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)

    def step(self, blocks: Iterable[int]) -> None:
        """Apply the update of ``blocks``."""
        for k in blocks:
            optimizer = self.optimizers[k]
            if optimizer is not None:
                optimizer.step()

    def state_dict(self) -> list[dict[str, Any] | None]:
        """Every optimizer's state (None for a block without one)."""
        return [o.state_dict() if o else None for o in self.optimizers]

    def load_state_dict(self, state: list[dict[str, Any] | None]) -> None:
        """Restore what ``state_dict`` saved."""
        for optimizer, saved in zip(self.optimizers, state, strict=True):
            if optimizer is not None and saved is not None:
                optimizer.load_state_dict(saved)
