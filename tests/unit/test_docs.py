"""The docs keep up with the registry: every rule has a results row, a methods page, a preset."""

from __future__ import annotations

import re
from collections.abc import Iterator
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


def extending_files() -> dict[str, str]:
    """The snippets of docs/extending.md that name a file in their first line, by that name."""
    text = (ROOT / "docs" / "extending.md").read_text()
    blocks = re.findall(r"```python\n(# (\S+\.py)\n.*?)```", text, flags=re.DOTALL)
    return {name: code for code, name in blocks}


@pytest.fixture
def isolated() -> Iterator[None]:
    """What the snippets register is undone after the test."""
    from tests.unit.api.registries import isolated_registries

    yield from isolated_registries()


def test_every_python_snippet_of_the_extension_guide_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: None
) -> None:
    """Each snippet is written to its file, in order; one with a ``__main__`` part runs as a
    script, the others are imported (a later one may import an earlier one). The stack of
    the first is then rebuilt from its run's config."""
    import importlib
    import runpy

    from beyond_backprop.config import load_config
    from beyond_backprop.eval.trained import load_trained_run
    from beyond_backprop.run import plugins

    files = extending_files()
    assert list(files) == ["my_stack.py", "my_rule.py", "test_my_rule.py", "my_arch.py",
                           "my_dataset.py", "my_schedule.py"]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(plugins.ENV_VAR, "")
    for name, code in files.items():
        (tmp_path / name).write_text(code)
        if 'if __name__ == "__main__":' in code:
            runpy.run_path(str(tmp_path / name), run_name="__main__")
        else:
            importlib.import_module(name.removesuffix(".py"))
    (run_dir,) = (tmp_path / "runs" / "my-stack").glob("*_dgl_s0")
    arch = load_config(run_dir / "config.yaml").model.arch
    assert arch == f"python:{tmp_path / 'my_stack.py'}:make_stack"
    assert len(load_trained_run(run_dir).experiment.stack) == 3


def test_the_suite_format_in_the_extension_guide_loads(tmp_path: Path) -> None:
    from beyond_backprop.compare.suite import load_suite

    text = (ROOT / "docs" / "extending.md").read_text()
    (suite,) = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    (tmp_path / "mine.yaml").write_text(suite)
    labels = [v.label for v in load_suite(tmp_path / "mine.yaml", tmp_path).variants]
    probe = "backprop-probe-1thread"
    assert labels == [
        "backprop",
        f"{probe}-before",
        "backprop-2stage-gpipe",
        f"{probe}-after",
        "dgl",
    ]
