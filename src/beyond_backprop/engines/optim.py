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
    a block without parameters); the learning rate is set every step (``lr_at``).

    With ``scaled_on`` (a device type: fp16 training) each optimizer has its own gradient
    scaler: block k's losses are multiplied by ``scale(k)`` before its backward pass and its
    gradients unscaled (non-finite ones skip the update) before its step.
    """

    def __init__(
        self,
        parameters: Iterable[list[nn.Parameter]],
        config: OptimConfig,
        scaled_on: str | None = None,
    ) -> None:
        self.optimizers = [build_optimizer(p, config) if p else None for p in parameters]
        self.scalers = [
            torch.amp.GradScaler(scaled_on) if scaled_on and o else None for o in self.optimizers
        ]
        for scaler in self.scalers:
            if scaler is not None:  # a scaler makes its scale on first use: make it now
                scaler.scale(torch.ones((), device=scaled_on))

    def scale(self, k: int) -> float:
        """The factor block ``k``'s losses are multiplied by (1 without a scaler)."""
        scaler = self.scalers[k] if self.scalers else None
        return float(scaler.get_scale()) if scaler is not None else 1.0

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
            optimizer, scaler = self.optimizers[k], self.scalers[k]
            if optimizer is None:
                continue
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)
                scaler.update()

    def state_dict(self) -> list[dict[str, Any] | None]:
        """Every optimizer's state (None for a block without one), with its scaler's."""
        return [
            None if o is None else {**o.state_dict(), **_scaler_state(s)}
            for o, s in zip(self.optimizers, self.scalers, strict=True)
        ]

    def load_state_dict(self, state: list[dict[str, Any] | None]) -> None:
        """Restore what ``state_dict`` saved."""
        for optimizer, scaler, saved in zip(self.optimizers, self.scalers, state, strict=True):
            if optimizer is None or saved is None:
                continue
            saved = dict(saved)
            scaler_state = saved.pop("grad_scaler", None)
            optimizer.load_state_dict(saved)
            if scaler is not None and scaler_state is not None:
                scaler.load_state_dict(scaler_state)


def _scaler_state(scaler: torch.amp.GradScaler | None) -> dict[str, Any]:
    return {} if scaler is None else {"grad_scaler": scaler.state_dict()}
