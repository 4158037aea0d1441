"""The docs keep up with the registry: every rule has a results row, a methods page, a preset."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from beyond_backprop.rules import RULES

ROOT = Path(__file__).resolve().parents[2]


def reproduction_rows() -> set[str]:
    """Rule names in the first column of the table under '## Reproduction' in results.md."""
    text = (ROOT / "docs" / "results.md").read_text()
    section = text.split("## Reproduction", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)`", section, flags=re.MULTILINE))


@pytest.mark.parametrize("rule", RULES.names())
def test_every_rule_has_a_reproduction_row(rule: str) -> None:
    assert rule in reproduction_rows(), f"docs/results.md has no reproduction row for {rule!r}"


@pytest.mark.parametrize("rule", RULES.names())
def test_every_rule_has_a_preset_and_is_in_the_readme(rule: str) -> None:
    presets = [p for p in (ROOT / "configs").rglob("*.yaml") if f"name: {rule}" in p.read_text()]
    assert presets, f"no preset under configs/ uses rule {rule!r}"
    assert f"`{rule}`" in (ROOT / "README.md").read_text()
