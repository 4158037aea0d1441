"""``beyond_backprop.train``: one run from Python, with your own network or rule, through the
same run function as ``bbp train`` (run directory, metrics, checkpoints, summary)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from beyond_backprop.config import ExperimentConfig, apply_override, build_experiment_config
from beyond_backprop.config.build import config_to_dict
from beyond_backprop.config.engine import EngineConfig
from beyond_backprop.config.load import read_yaml
from beyond_backprop.engines.recorder import Progress
from beyond_backprop.errors import ConfigError
from beyond_backprop.models import BlockStack
from beyond_backprop.models.python_arch import PREFIX, import_path
from beyond_backprop.rules import RULES
from beyond_backprop.run.plugins import load_plugins
from beyond_backprop.run.session import RunResult, start_run

log = logging.getLogger(__name__)

StackFactory = Callable[..., BlockStack]
"""``factory(input_shape, num_classes, **options) -> BlockStack``."""


def train(
    config: ExperimentConfig | Mapping[str, Any] | str | os.PathLike[str],
    *,
    stack: StackFactory | str | None = None,
    rule: str | type | None = None,
    overrides: Sequence[str] = (),
    progress: Progress | None = None,
    stop_after: int | None = None,
) -> RunResult:
    """Train one run in one process and return its directory and summary.

    Args:
        config: a YAML preset's path, a mapping of the same keys, or an ``ExperimentConfig``.
        stack: your network: the function that builds it from ``(input_shape, num_classes)``
            (a module-level function, so the run's ``config.yaml`` can name it as
            ``model.arch: python:MODULE:FUNCTION``), or that name itself. Replaces
            ``model``; its optional parameters are ``model.*`` options.
        rule: a registered rule's name or class (``@register_rule``); replaces ``rule``.
        overrides: ``key.path=value`` strings, applied last (as ``--set``).
        progress: receives each step and evaluation (the CLI passes its progress bar).
        stop_after: stop with a checkpoint after this global step (resume with
            ``bbp train --resume RUN_DIR``).

    Raises:
        ConfigError: every problem of the resulting config, one per line.

    Examples:
        >>> result = train("configs/smoke/dgl.yaml", stack=make_stack)  # doctest: +SKIP
        >>> result.summary["accuracy"], result.run_dir  # doctest: +SKIP
    """
    load_plugins()
    data = _as_mapping(config)
    if stack is not None:
        data["model"] = _replaced(data.get("model"), "arch", _arch_name(stack))
    if rule is not None:
        data["rule"] = _replaced(data.get("rule"), "name", _rule_name(rule))
    problems = [p for override in overrides for p in apply_override(data, override)]
    if problems:
        raise ConfigError(problems)
    cfg = build_experiment_config(data)
    if cfg.engine.staged:
        raise ConfigError(
            [f"engine.stages: {cfg.engine.stages} runs one process per stage: use "
             f"bbp launch --nproc {cfg.engine.stages}"]
        )  # fmt: skip
    for line in staged_only_warnings(cfg):
        log.warning(line)
    return start_run(cfg, progress=progress, stop_after=stop_after)


STAGED_ONLY = ("microbatches", "gpipe_batchnorm", "boundaries", "timeout_s", "stop_check_every")
"""``engine.*`` keys that only staged runs (``engine.stages`` > 1) read."""


def staged_only_warnings(config: ExperimentConfig) -> list[str]:
    """One line per ``engine`` key set away from its default that a one-process run ignores."""
    if config.engine.staged:
        return []
    default = EngineConfig()
    return [
        f"engine.{key}: {getattr(config.engine, key)!r} is ignored in one process (it applies "
        f"to staged runs: bbp launch --nproc K)"
        for key in STAGED_ONLY
        if getattr(config.engine, key) != getattr(default, key)
    ]


def _as_mapping(config: ExperimentConfig | Mapping[str, Any] | str | os.PathLike[str]
                ) -> dict[str, Any]:  # fmt: skip
    if isinstance(config, ExperimentConfig):
        return dict(config_to_dict(config))
    if isinstance(config, Mapping):
        return _deep_copy(config)
    return read_yaml(Path(config))


def _replaced(section: Any, selector: str, name: str) -> dict[str, Any]:
    """The section selecting ``name``: its options kept when it already selected it."""
    if isinstance(section, dict) and section.get(selector) == name:
        return section
    return {selector: name}


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _arch_name(stack: StackFactory | str) -> str:
    if isinstance(stack, BlockStack):
        raise ConfigError(
            ["stack=: give the function that builds your BlockStack, not the stack itself, so "
             "the run's config.yaml can rebuild it for --resume, bbp eval and bbp compare "
             "(train(cfg, stack=make_stack)); build_experiment(config, stack=...) takes a stack"]
        )  # fmt: skip
    if isinstance(stack, str):
        return stack if stack.startswith(PREFIX) else PREFIX + stack
    if "<" in stack.__qualname__:  # a lambda or a nested function cannot be imported again
        raise ConfigError(
            [f"stack=: {stack.__qualname__} cannot be imported by name: define it at the top "
             "level of a module or script"]
        )  # fmt: skip
    return import_path(stack)


def _rule_name(rule: str | type) -> str:
    if isinstance(rule, str):
        return rule
    found = [name for name in RULES.names() if RULES.get(name) is rule]
    if not found:
        raise ConfigError(
            [f"rule=: {rule.__name__} is not registered: decorate it with "
             "@register_rule('<name>') (from beyond_backprop import register_rule)"]
        )  # fmt: skip
    return found[0]
