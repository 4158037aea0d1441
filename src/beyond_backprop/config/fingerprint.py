"""A config's fingerprint for checkpoints: its dumped text, a sha256 of that text, and the
keys in which two configs differ (so a refused resume says what changed)."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import yaml

from beyond_backprop.config.build import build_experiment_config, config_to_dict
from beyond_backprop.config.load import dump_config
from beyond_backprop.config.schema import ExperimentConfig
from beyond_backprop.config.yaml_safe import safe_load
from beyond_backprop.errors import ConfigError


def config_sha256(text: str) -> str:
    """The sha256 (hex) of a dumped config's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_fingerprint(config: ExperimentConfig) -> dict[str, str]:
    """What a checkpoint stores of its config: ``config`` (the YAML text) and its hash."""
    text = dump_config(config)
    return {"config": text, "config_sha256": config_sha256(text)}


def config_changes(old_text: str, config: ExperimentConfig, limit: int = 6) -> list[str]:
    """``key: old -> new`` for each key in which ``config`` differs from the dumped config
    ``old_text`` (at most ``limit``, then a count of the rest).

    The old text is read as a config first, so that a key it lacks (a field added since it
    was written) counts as its default: such a config has no changes.
    """
    try:
        tree = safe_load(old_text)
    except (yaml.YAMLError, ValueError):
        return ["(the stored config cannot be read)"]
    # a key since removed or renamed fails to build: then the text is compared as it is
    with contextlib.suppress(ConfigError):
        tree = config_to_dict(build_experiment_config(tree))
    old, new = _flat(tree), _flat(config_to_dict(config))
    changes = [
        f"{key}: {_show(old, key)} -> {_show(new, key)}"
        for key in sorted(old.keys() | new.keys())
        if key not in old or key not in new or old[key] != new[key]
    ]
    more = len(changes) - limit
    return changes[:limit] + ([f"and {more} more"] if more > 0 else [])


def _show(flat: dict[str, Any], key: str) -> str:
    return repr(flat[key]) if key in flat else "(absent)"


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat
