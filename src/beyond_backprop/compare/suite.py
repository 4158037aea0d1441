"""A comparison suite: a base config and the entries (rules, optional staged variants) to run.

```yaml
name: quick
base: {data: {name: mnist, train_limit: 10000}, model: {arch: mlp}, train: {epochs: 1}}
entries:
  - {name: backprop, rule: {name: backprop}, staged: {stages: 2, schedule: gpipe}}
  - {name: dgl, rule: {name: dgl}, staged: {stages: 2, schedule: pipelined}}
  - {name: fa, rule: {name: fa}, set: [optim.lr=0.01]}
```

A staged entry's processes share the one-process run's threads (``engine.threads`` / stages
each, at least 1; ``staged: {threads: N}`` sets it), so the two rows use the same cores;
``staged: {boundaries: [...]}`` sets the staged run's ``engine.boundaries``. Each
staged entry also gets a throughput probe, the baseline of "one process on one device": the
one-process run with one stage's threads, for ``PROBE_STEPS`` steps in two halves, one just
before the staged run and one just after, so a machine whose speed drifts (a shared one does
by 10-20% within minutes) shifts both sides of the ratio alike.
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
STAGED_KEYS = ("stages", "schedule", "threads", "boundaries")
PROBE_STEPS = 80
"""Training steps of a throughput probe, half before the staged run and half after (each
half's steady rate leaves out its warm-up steps)."""
PROBE_HALVES = ("before", "after")
PROBE_EVAL_EXAMPLES = 500
"""A probe's one evaluation, after its last step, scores only this many examples: its
accuracy is not reported, and it is not timed."""


@dataclass(frozen=True)
class Variant:
    """One run of an entry: in one process, or staged over ``stages`` processes."""

    entry: str
    rule: str
    config: ExperimentConfig
    stages: int = 1
    schedule: str | None = None
    probe: str | None = None
    """A half of a throughput probe (not a row of the table; one of ``PROBE_HALVES``): a few
    steps, one stage's threads."""

    @property
    def label(self) -> str:
        """``<entry>``, ``<entry>-<K>stage-<schedule>`` or ``<entry>-probe-<T>thread-<half>``:
        the run's name and file stem."""
        if self.probe:
            return f"{self.entry}-probe-{self.config.engine.threads}thread-{self.probe}"
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
        variants += _staged_variants(data, staged, config, f"{where}.staged", problems)
    return variants


def _staged_variants(
    data: dict[str, Any],
    staged: Any,
    one: ExperimentConfig,
    where: str,
    problems: list[str],
) -> list[Variant]:
    """The staged run of an entry between the two halves of its throughput probe."""
    if not isinstance(staged, dict):
        problems.append(f"{where}: expected {{stages: K, schedule: S}}, got {staged!r}")
        return []
    for key in staged:
        if key not in STAGED_KEYS:
            hint = did_you_mean(str(key), STAGED_KEYS)
            problems.append(f"{where}.{key}: unknown key{hint}; valid: {', '.join(STAGED_KEYS)}")
    stages = staged.get("stages", 2)
    schedule = staged.get("schedule", "naive")
    total = one.engine.threads
    per_stage = staged.get("threads", None if total is None else max(1, total // int(stages)))
    engine = {**data.get("engine", {}), "stages": stages, "schedule": schedule}
    if "boundaries" in staged:
        engine["boundaries"] = staged["boundaries"]
    config = _build({**data, "name": f"{one.name}-{stages}stage-{schedule}",
                     "engine": {**engine, "threads": per_stage}}, where, problems)  # fmt: skip
    if config is None:
        return []
    staged_run = Variant(one.name, one.rule.name, config, int(stages), str(schedule))
    train = {**data.get("train", {}), "max_steps": PROBE_STEPS // len(PROBE_HALVES),
             "eval_every_steps": None}  # fmt: skip
    limit = min(one.data.test_limit or PROBE_EVAL_EXAMPLES, PROBE_EVAL_EXAMPLES)
    probe_data = {**data.get("data", {}), "test_limit": limit}
    halves = []
    for half in PROBE_HALVES:  # each its own name, so neither is taken for the other's run
        probe = _build({**data, "name": f"{one.name}-probe-{per_stage}thread-{half}",
                        "train": train, "data": probe_data,
                        "engine": {**data.get("engine", {}), "threads": per_stage}},
                       f"{where} (its probe)", problems)  # fmt: skip
        if probe is None:
            return [staged_run]
        halves.append(Variant(one.name, one.rule.name, probe, probe=half))
    return [halves[0], staged_run, halves[1]]


def _build(data: dict[str, Any], where: str, problems: list[str]) -> ExperimentConfig | None:
    try:
        return build_experiment_config(data)
    except ConfigError as error:
        problems.extend(f"{where}: {p}" for p in error.problems)
        return None
