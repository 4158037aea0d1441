"""The public API: ``train`` with your own stack or rule, ``python:`` architectures, plugins."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import beyond_backprop as bbp
from beyond_backprop.config import load_config
from beyond_backprop.errors import ConfigError
from beyond_backprop.models import ARCHITECTURES
from beyond_backprop.run import plugins
from tests.helpers import tiny_config

USER_MODULE = """
from torch import nn
from beyond_backprop import BlockStack

def make_stack(input_shape, num_classes, width: int = 8, activation: str = "relu"):
    act = nn.ReLU() if activation == "relu" else nn.Tanh()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, width), act, nn.Linear(width, num_classes))
    return BlockStack.from_sequential(model, [3], input_shape)
"""


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module ``user_models_<n>`` on the path with a stack factory; returns its name."""
    name = f"user_models_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_python_arch_options_come_from_the_function_signature(user_module: str) -> None:
    cls = ARCHITECTURES.get(f"python:{user_module}:make_stack")
    options = cls(width=4)
    stack = options.build((1, 8, 8), 3)
    assert len(stack) == 2 and stack.output_shapes[-1] == (3,)
    assert stack.blocks[0][1].out_features == 4


def test_python_arch_from_a_file_path(tmp_path: Path) -> None:
    path = tmp_path / "by_path.py"
    path.write_text(USER_MODULE)
    assert f"python:{path}:make_stack" in ARCHITECTURES


def test_a_bad_python_arch_is_one_config_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        tiny_config(tmp_path, model={"arch": "python:no_such_module_xyz:make"})
    (line,) = info.value.problems
    assert line.startswith("model.arch: cannot use architecture 'python:no_such_module_xyz:make'")
    assert "No module named 'no_such_module_xyz'" in line


def test_a_python_arch_option_is_type_checked(user_module: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        tiny_config(tmp_path, model={"arch": f"python:{user_module}:make_stack", "width": "x"})
    assert info.value.problems == ["model.width: 'x' is not a valid int"]


def test_train_with_a_stack_factory_names_it_in_the_run_config(
    user_module: str, tmp_path: Path
) -> None:
    module = __import__(user_module)
    config = tiny_config(tmp_path, train={"epochs": 1})
    result = bbp.train(config, stack=module.make_stack, overrides=["model.width=6"])
    saved = load_config(result.run_dir / "config.yaml")
    assert saved.model.arch == f"python:{user_module}:make_stack"
    assert saved.model.options.width == 6
    assert result.summary["completed"] and 0 <= result.summary["accuracy"] <= 1
    trained = bbp.load_trained_run(result.run_dir)
    assert trained.experiment.stack.blocks[0][1].out_features == 6


def test_train_refuses_a_stack_it_could_not_rebuild(tmp_path: Path) -> None:
    stack = bbp.BlockStack([nn.Sequential(nn.Flatten(), nn.Linear(64, 4))], (1, 8, 8))
    with pytest.raises(ConfigError, match="give the function that builds your BlockStack"):
        bbp.train(tiny_config(tmp_path), stack=stack)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cannot be imported by name"):
        bbp.train(tiny_config(tmp_path), stack=lambda shape, n: stack)


def test_build_experiment_takes_a_prebuilt_stack(tmp_path: Path) -> None:
    stack = bbp.BlockStack([nn.Sequential(nn.Flatten(), nn.Linear(64, 4))], (1, 8, 8))
    experiment = bbp.build_experiment(tiny_config(tmp_path), stack=stack)
    assert experiment.stack is stack
    with pytest.raises(ValueError, match="does not match the data"):
        bbp.build_experiment(tiny_config(tmp_path), stack=bbp.BlockStack([nn.Flatten()], (2,)))


def test_train_with_a_registered_rule_class(tmp_path: Path) -> None:
    from beyond_backprop.rules.fa import FeedbackAlignment

    result = bbp.train(tiny_config(tmp_path, train={"epochs": 1}), rule=FeedbackAlignment)
    assert load_config(result.run_dir / "config.yaml").rule.name == "fa"
    with pytest.raises(ConfigError, match="is not registered"):
        bbp.train(tiny_config(tmp_path), rule=type("Unregistered", (bbp.LearningRule,), {}))


def test_plugins_load_once_and_reach_child_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(plugins.ENV_VAR, "")  # restored after the test
    path = tmp_path / "counted_plugin.py"
    path.write_text("import builtins\nbuiltins._bbp_plugin_count = getattr(builtins, "
                    "'_bbp_plugin_count', 0) + 1\n")  # fmt: skip
    monkeypatch.setattr(plugins, "_loaded", set())
    assert plugins.load_plugins([str(path)]) == [str(path.resolve())]
    assert plugins.load_plugins([str(path)]) == []
    import builtins

    assert builtins._bbp_plugin_count == 1  # type: ignore[attr-defined]
    assert plugins.ENV_VAR in __import__("os").environ
    del builtins._bbp_plugin_count  # type: ignore[attr-defined]


def test_a_missing_plugin_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.ENV_VAR, "")  # restored after the test
    with pytest.raises(ConfigError) as info:
        plugins.load_plugins(["no_such_plugin_xyz"])
    (line,) = info.value.problems
    assert line.startswith("--plugin no_such_plugin_xyz: cannot import it (ModuleNotFoundError")


def test_the_package_imports_lazily() -> None:
    code = "import sys, beyond_backprop; print('torch' in sys.modules)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert torch.is_tensor(torch.zeros(1))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = bbp.nope  # type: ignore[attr-defined]


def test_staged_only_keys_of_a_one_process_run_are_warned_about(tmp_path: Path) -> None:
    from beyond_backprop.run.api import staged_only_warnings

    config = tiny_config(tmp_path, engine={"threads": 1, "microbatches": 8, "timeout_s": 5.0})
    assert staged_only_warnings(config) == [
        "engine.microbatches: 8 is ignored in one process (it applies to staged runs: "
        "bbp launch --nproc K)",
        "engine.timeout_s: 5.0 is ignored in one process (it applies to staged runs: "
        "bbp launch --nproc K)",
    ]
    staged = tiny_config(tmp_path, engine={"stages": 2, "microbatches": 8})
    assert staged_only_warnings(staged) == []


@pytest.mark.parametrize("command", ["train", "launch", "eval", "plot", "compare", "list"])
def test_every_command_has_plugin_and_a_plain_help(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers import run_cli

    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli([command, "--help"], monkeypatch, capsys)
    assert code == 0
    assert "--plugin" in out and "MODULE" in out
    assert "``" not in out and "<bool>" not in out


def test_train_keeps_the_options_of_the_section_it_selects(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, rule={"name": "backprop", "label_smoothing": 0.1},
                         train={"epochs": 1})  # fmt: skip
    result = bbp.train(config, rule="backprop")
    assert load_config(result.run_dir / "config.yaml").rule.options.label_smoothing == 0.1
