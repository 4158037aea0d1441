"""Turn plain mappings (parsed YAML) into the frozen config dataclasses, collecting every
problem instead of stopping at the first."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

import beyond_backprop.data  # noqa: F401  (registers the datasets that data.name names)
from beyond_backprop.config.schema import ExperimentConfig, ModelSection, RuleSection
from beyond_backprop.errors import ConfigError, did_you_mean
from beyond_backprop.models import ARCHITECTURES
from beyond_backprop.rules import RULES

_MISSING = object()


def build_experiment_config(data: Mapping[str, Any]) -> ExperimentConfig:
    """The experiment config for ``data``; raises ``ConfigError`` listing every problem."""
    errors: list[str] = []
    config = build_dataclass(ExperimentConfig, data, "", errors)
    if errors or config is None:
        raise ConfigError(errors)
    return config


def build_dataclass(cls: type, data: Any, path: str, errors: list[str]) -> Any:
    """An instance of dataclass ``cls`` from mapping ``data``; problems go to ``errors``."""
    if cls in _SECTIONS:
        return _build_section(cls, data, path, errors)
    if not isinstance(data, Mapping):
        errors.append(f"{path or 'config'}: expected a mapping of keys, got {data!r}")
        return None
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in fields:
            hint = did_you_mean(str(key), fields)
            errors.append(f"{_join(path, key)}: unknown key{hint}; valid: {', '.join(fields)}")
    values, failed = {}, set()
    for name in fields:
        before = len(errors)
        if name in data:
            values[name] = _convert(data[name], hints[name], _join(path, name), errors)
        elif hints[name] in _SECTIONS:  # a section's options come from its selected class
            values[name] = _build_section(hints[name], {}, _join(path, name), errors)
        if len(errors) > before:
            failed.add(name)
            values.pop(name)
    try:
        # the fields that failed take their defaults, so that the value checks of the
        # others still run: every problem is reported at once
        instance = cls(**values)
    except TypeError:  # a failed field without a default
        return None
    problems = getattr(instance, "problems", None)
    if problems is not None:
        errors.extend(
            f"{_join(path, key)}: {message}"
            for key, message in problems()
            if not _mentions(key, message, failed)
        )
    return None if failed else instance


def _mentions(key: str, message: str, failed: set[str]) -> bool:
    """Whether a problem is about a field that failed (and so was checked at its default)."""
    words = set(re.findall(r"\w+", message)) | {key.split(".")[0].split("[")[0]}
    return not failed.isdisjoint(words)


def _build_section(cls: type, data: Any, path: str, errors: list[str]) -> Any:
    """``model:`` / ``rule:``: the selector key picks the registered config class for the rest."""
    selector, registry, config_of = _SECTIONS[cls]
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        errors.append(f"{path}: expected a mapping with key {selector!r}, got {data!r}")
        return None
    name = data.get(selector, getattr(cls(), selector))
    if name not in registry:
        errors.append(f"{_join(path, selector)}: {registry.unknown_message(name)}")
        return None
    options = {k: v for k, v in data.items() if k != selector}
    built = build_dataclass(config_of(registry.get(name)), options, path, errors)
    return None if built is None else cls(name, built)


_SECTIONS: dict[type, tuple[str, Any, Any]] = {
    ModelSection: ("arch", ARCHITECTURES, lambda arch_config: arch_config),
    RuleSection: ("name", RULES, lambda rule: rule.Config),
}


def _convert(value: Any, tp: Any, path: str, errors: list[str]) -> Any:
    """``value`` checked against (and coerced to) type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        if value is None:
            errors.append(f"{path}: null is not allowed here")
            return None
        return _convert(value, inner, path, errors)
    if origin is Literal:
        if value in args:
            return value
        choices = ", ".join(repr(a) for a in args)
        hint = did_you_mean(str(value), [str(a) for a in args])
        errors.append(f"{path}: {value!r} is not one of {choices}{hint}")
        return None
    if origin is tuple:
        if not isinstance(value, list | tuple):
            errors.append(f"{path}: expected a list, got {value!r}")
            return None
        fixed = not (len(args) == 2 and args[1] is Ellipsis)
        if fixed and len(value) != len(args):
            errors.append(f"{path}: expected a list of {len(args)} values, got {value!r}")
            return None
        item_types = args if fixed else [args[0]] * len(value)
        items = [
            _convert(v, t, f"{path}[{i}]", errors)
            for i, (v, t) in enumerate(zip(value, item_types, strict=True))
        ]
        return tuple(items)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(typing.cast(type, tp), value, path, errors)
    return _convert_scalar(value, tp, path, errors)


def _convert_scalar(value: Any, tp: Any, path: str, errors: list[str]) -> Any:
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:
        raise TypeError(f"config field {path} has an unsupported type {tp!r}")
    if value is None:
        errors.append(f"{path}: null is not allowed here (expected {tp.__name__})")
        return None
    if not ok:
        errors.append(f"{path}: {value!r} is not a valid {tp.__name__}")
        return None
    problem = scalar_problem(value, tp)
    if problem is not None:
        errors.append(f"{path}: {problem}")
        return None
    return float(value) if tp is float else value


INT_BOUND = 2**63
"""Integers must fit in a signed 64-bit integer (torch and numpy take nothing wider)."""


def scalar_problem(value: Any, tp: type) -> str | None:
    """Why a well-typed scalar is still unusable in every field of type ``tp``, or None.

    Every float field refuses NaN and infinity (a NaN rate trains NaN weights and compares
    false against every bound); every int must fit in 64 bits; no string may hold a NUL byte
    (it cannot reach a file name or the operating system).
    """
    if tp is float and not math.isfinite(value):
        return f"{value!r} is invalid: must be a finite number"
    if tp is int and not -INT_BOUND <= int(value) < INT_BOUND:
        return f"{value} is invalid: must fit in 64 bits (|value| < 2**63)"
    if tp is str and "\x00" in str(value):
        return f"{value!r} is invalid: holds a NUL character"
    return None


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def config_to_dict(config: Any) -> Any:
    """A plain mapping (YAML-ready) for a config: sections flattened, tuples as lists."""
    if isinstance(config, ModelSection | RuleSection):
        selector = _SECTIONS[type(config)][0]
        return {selector: getattr(config, selector), **config_to_dict(config.options)}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, tuple | list):
        return [config_to_dict(v) for v in config]
    return config
