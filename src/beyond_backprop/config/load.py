"""YAML presets and ``--set key.path=value`` overrides."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from beyond_backprop.config.build import build_experiment_config, config_to_dict
from beyond_backprop.config.schema import ExperimentConfig
from beyond_backprop.config.yaml_safe import ConfigYAMLError, safe_load
from beyond_backprop.errors import ConfigError


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The config in YAML file ``path`` (defaults alone when None) with ``overrides`` applied.

    Raises:
        ConfigError: listing every problem, one per line.
    """
    data: dict[str, Any] = read_yaml(Path(path)) if path is not None else {}
    problems: list[str] = []
    for override in overrides:
        problems.extend(apply_override(data, override))
    if problems:
        raise ConfigError(problems)
    return build_experiment_config(data)


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file as a mapping, with one-line errors for missing or malformed files."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise ConfigError([f"{path}: cannot read config file ({error.strerror})"]) from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            [f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
             f"{error.start}); save the config as UTF-8"]
        ) from None  # fmt: skip
    try:
        data = safe_load(text)
    except ConfigYAMLError as error:
        where = f" line {error.line}" if error.line is not None else ""
        raise ConfigError([f"{path}:{where}: {error}"]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        reason = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError([f"{path}:{where}: {reason}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a mapping of keys at the top, got {data!r}"])
    return data


def apply_override(data: dict[str, Any], override: str) -> list[str]:
    """Apply one ``key.path=value`` (value parsed as YAML, numbers as written: ``1e-3``) to
    ``data``; returns problems."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        return [f"--set {override!r}: expected key.path=value, e.g. optim.lr=0.05"]
    try:
        value = safe_load(raw) if raw.strip() else ""
    except ConfigYAMLError as error:
        return [f"--set {override!r}: {error}"]
    except yaml.YAMLError:
        return [f"--set {override!r}: cannot parse the value {raw!r}"]
    *parents, leaf = key.strip().split(".")
    node = data
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parents[: i + 1])
            return [f"--set {override!r}: {where} is {child!r}, not a section"]
        node = child
    node[leaf] = value
    return []


def dump_config(config: ExperimentConfig) -> str:
    """The config as YAML text that ``load_config`` reads back to an equal config."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)
