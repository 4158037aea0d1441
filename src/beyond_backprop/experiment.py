"""Build everything a run needs from its config: data, the block stack, the rule, its locals."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from beyond_backprop.config.schema import ExperimentConfig
from beyond_backprop.data import DatasetSplits, load_dataset
from beyond_backprop.models import BlockStack, build_model
from beyond_backprop.rules import RULES, LearningRule


@dataclass
class Experiment:
    """The built pieces of one run (the engine decides where and when they run)."""

    config: ExperimentConfig
    data: DatasetSplits
    stack: BlockStack
    rule: LearningRule
    locals: list[nn.Module | None]
    """The rule's module for each block (None where it has none)."""
    prepare_report: list[str]
    """What ``rule.prepare`` changed in the stack, one line each."""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """Where the stack and the local modules are (``to``); batches are moved there."""

    @property
    def locals_container(self) -> nn.ModuleDict:
        """The local modules as one module, keyed by block index (for state dicts)."""
        return nn.ModuleDict({str(k): m for k, m in enumerate(self.locals) if m is not None})

    def to(self, device: torch.device, data: bool = False) -> Experiment:
        """Move the stack and the local modules (and with ``data`` the dataset) to ``device``,
        in place; returns the experiment."""
        self.stack.to(device)
        for local in self.locals:
            if local is not None:
                local.to(device)
        if data:
            self.data = self.data.to(device)
        self.device = device
        return self

    def block_parameters(self, k: int) -> list[nn.Parameter]:
        """Block ``k``'s parameters and those of its local module: what its optimizer updates."""
        local = self.locals[k]
        return [*self.stack.blocks[k].parameters(), *(local.parameters() if local else [])]


def seed_everything(seed: int) -> None:
    """Seed torch's and python's global generators (the library draws from nothing else)."""
    torch.manual_seed(seed)
    random.seed(seed)


def build_experiment(
    config: ExperimentConfig,
    data: DatasetSplits | None = None,
    *,
    stack: BlockStack | None = None,
) -> Experiment:
    """Load the data (unless given), then build the stack, the rule and its locals from
    ``config.seed``, in that order, so the same config builds the same parameters.

    ``stack``: use this network instead of building ``config.model`` (the rule still
    prepares it and builds its locals). A run that must be resumed or evaluated later names
    its network in the config instead: ``model.arch: python:MODULE:FUNCTION``.
    """
    if data is None:
        data = load_dataset(config.data)
    seed_everything(config.seed)
    if stack is None:
        stack = build_model(
            config.model.arch, config.model.options, data.input_shape, data.num_classes
        )
    elif stack.input_shape != tuple(data.input_shape):
        raise ValueError(
            f"stack input_shape {stack.input_shape} does not match the data's "
            f"{tuple(data.input_shape)} ({config.data.name})"
        )
    rule = RULES.get(config.rule.name)(config.rule.options)
    report = rule.prepare(stack)
    locals_: Sequence[nn.Module | None] = rule.build_locals(stack)
    if len(locals_) != len(stack):
        raise ValueError(
            f"rule {config.rule.name!r} built {len(locals_)} locals for {len(stack)} blocks"
        )
    return Experiment(config, data, stack, rule, list(locals_), report)
