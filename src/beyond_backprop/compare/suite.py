"""A comparison suite: a base config and the entries (rules, optional staged variants) to run.

```yaml
name: quick
base: {data: {name: mnist, train_limit: 10000}, model: {arch: mlp}, train: {epochs: 1}}
entries:
  - {name: backprop, rule: {name: backprop}, staged: {stages: 2, schedule: gpipe}}
  - {name: dgl, rule: {name: dgl}, staged: {stages: 2, schedule: pipelined}}
  - {name: fa, rule: {name: fa}, set: [optim.lr=0.01]}
```
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beyond_backprop.config import ExperimentConfig, apply_override, build_experiment_config
from beyond_backprop.config.load import read_yaml
from beyond_backprop.errors import ConfigError, did_you_mean

SUITE_KEYS = ("name", "description", "base", "entries")
ENTRY_KEYS = ("name", "rule", "set", "staged")


@dataclass(frozen=True)
class Variant:
    """One run of an entry: in one process, or staged over ``stages`` processes."""

    entry: str
    rule: str
    config: ExperimentConfig
    stages: int = 1
    schedule: str | None = None

    @property
    def label(self) -> str:
        """``<entry>`` or ``<entry>-<K>stage-<schedule>``: the run's name and file stem."""
        return (
            self.entry if self.stages == 1 else f"{self.entry}-{self.stages}stage-{self.schedule}"
        )


@dataclass(frozen=True)
class Suite:
    """A loaded, validated suite."""

    name: str
    description: str
    variants: list[Variant]


def load_suite(path: Path, runs_root: Path) -> Suite:
    """Read and validate a suite; every problem of every entry is reported at once."""
    data = read_yaml(path)
    problems = [
        f"{key}: unknown key{did_you_mean(str(key), SUITE_KEYS)}; valid: {', '.join(SUITE_KEYS)}"
        for key in data
        if key not in SUITE_KEYS
    ]
    entries = data.get("entries")
    if not isinstance(entries, list) or not entries:
        problems.append("entries: expected a non-empty list of {name, rule, [set], [staged]}")
        entries = []
    variants: list[Variant] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        variants.extend(
            _entry_variants(
                data.get("base") or {}, entry, f"entries[{i}]", runs_root, problems, seen
            )
        )
    if problems:
        raise ConfigError([f"{path}: {p}" for p in problems])
    return Suite(str(data.get("name", path.stem)), str(data.get("description", "")), variants)


def _entry_variants(
    base: dict[str, Any],
    entry: Any,
    where: str,
    runs_root: Path,
    problems: list[str],
    seen: set[str],
) -> list[Variant]:
    if not isinstance(entry, dict) or "name" not in entry or "rule" not in entry:
        problems.append(f"{where}: expected a mapping with at least 'name' and 'rule'")
        return []
    name = str(entry["name"])
    if name in seen:
        problems.append(f"{where}.name: {name!r} is used twice")
    seen.add(name)
    for key in entry:
        if key not in ENTRY_KEYS:
            hint = did_you_mean(str(key), ENTRY_KEYS)
            problems.append(f"{where}.{key}: unknown key{hint}; valid: {', '.join(ENTRY_KEYS)}")
    data = copy.deepcopy(base)
    data["rule"] = entry["rule"]
    data["name"] = name
    data["log"] = {**data.get("log", {}), "root": str(runs_root), "progress": False}
    for override in entry.get("set") or []:
        problems.extend(f"{where}.set: {p}" for p in apply_override(data, str(override)))
    config = _build(data, where, problems)
    if config is None:
        return []
    variants = [Variant(name, config.rule.name, config)]
    staged = entry.get("staged")
    if staged is not None:
        if not isinstance(staged, dict):
            problems.append(f"{where}.staged: expected {{stages: K, schedule: S}}, got {staged!r}")
            return variants
        stages = staged.get("stages", 2)
        schedule = staged.get("schedule", "naive")
        label = f"{name}-{stages}stage-{schedule}"
        data["engine"] = {
            **data.get("engine", {}),
            "stages": stages,
            "schedule": schedule,
        }
        data["name"] = label
        staged_config = _build(data, f"{where}.staged", problems)
        if staged_config is not None:
            variants.append(Variant(name, config.rule.name, staged_config, stages, schedule))
    return variants


def _build(data: dict[str, Any], where: str, problems: list[str]) -> ExperimentConfig | None:
    try:
        return build_experiment_config(data)
    except ConfigError as error:
        problems.extend(f"{where}: {p}" for p in error.problems)
        return None
