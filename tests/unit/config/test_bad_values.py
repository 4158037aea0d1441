"""Every bad value is refused at load time with one line naming its key path (exit 2), and
numbers are read as users write them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from beyond_backprop.config import build_experiment_config, load_config
from beyond_backprop.config.yaml_safe import safe_load
from beyond_backprop.errors import ConfigError

BAD = [
    # (override, key path the problem names)
    ("model.hidden=[-5]", "model.hidden"),
    ("model.hidden=[0]", "model.hidden"),
    ("model.dropout=1.5", "model.dropout"),
    ("model.dropout=-0.5", "model.dropout"),
    ("model.dropout=.nan", "model.dropout"),
    ("optim.betas=[2,-1]", "optim.betas"),
    ("optim.gamma=.nan", "optim.gamma"),
    ("optim.gamma=0", "optim.gamma"),
    ("optim.lr=.inf", "optim.lr"),
    ("optim.lr=-.inf", "optim.lr"),
    ("optim.weight_decay=.nan", "optim.weight_decay"),
    ("optim.momentum=.nan", "optim.momentum"),
    ("seed=18446744073709551617", "seed"),
    ("seed=-1", "seed"),
    ("seed=4294967296", "seed"),
    ("name=" + "x" * 300, "name"),
    ("name=a/b", "name"),
    ("engine.timeout_s=.inf", "engine.timeout_s"),
    ("engine.boundaries=[0]", "engine.boundaries"),
    ("engine.replay.slowdown=.nan", "engine.replay.slowdown"),
    ("data.batch_size=99999999999999999999", "data.batch_size"),
    ("data.augment.crop_padding=-1", "data.augment.crop_padding"),
    ("data.augment.crop_padding=1000000", "data.augment.crop_padding"),
    ("engine.threads=1000000000000", "engine.threads"),
]
ARCH_BAD = [
    ("cnn", "model.channels=[0,4,8]", "model.channels"),
    ("cnn", "model.pool=[true]", "model.pool"),
    ("cnn", "model.fc_width=-1", "model.fc_width"),
    ("vgg", "model.width=.nan", "model.width"),
    ("resnet", "model.width=.inf", "model.width"),
    ("resnet", "model.width=1e30", "model.width"),
    ("vgg", "model.width=1e30", "model.width"),
    ("cifar_cnn", "model.width=0", "model.width"),
]
RULE_BAD = [
    ("backprop", "rule.label_smoothing=2", "rule.label_smoothing"),
    ("dfa", "rule.scale=.nan", "rule.scale"),
    ("dgl", "rule.head.width=0", "rule.head.width"),
    ("dgl", "rule.blocks=[2,1]", "rule.blocks"),
    ("local_parallel", "rule.blocks=[0]", "rule.blocks"),
    ("simclr", "rule.temperature=.inf", "rule.temperature"),
    ("ff", "rule.theta=.nan", "rule.theta"),
    ("inpaint", "rule.overlap_weight=.inf", "rule.overlap_weight"),
    ("inpaint", "rule.mask_seed=-1", "rule.mask_seed"),
]


def _problems(overrides: list[str], path: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)
    return caught.value.problems


@pytest.mark.parametrize(("override", "key"), BAD)
def test_bad_value_is_one_line_naming_its_key(override: str, key: str) -> None:
    problems = _problems([override])
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{key}: "), problems
    assert "\n" not in problems[0]


@pytest.mark.parametrize(("arch", "override", "key"), ARCH_BAD)
def test_bad_architecture_values(arch: str, override: str, key: str) -> None:
    problems = _problems([f"model.arch={arch}", override])
    assert [p.split(": ")[0] for p in problems] == [key], problems


@pytest.mark.parametrize(("rule", "override", "key"), RULE_BAD)
def test_bad_rule_values(rule: str, override: str, key: str) -> None:
    problems = _problems([f"rule.name={rule}", override])
    assert key in {p.split(": ")[0] for p in problems}, problems


def test_all_problems_at_once() -> None:
    problems = _problems(["model.hidden=[0]", "optim.lr=.nan", "optim.betas=[2,0.5]", "seed=-1"])
    assert {p.split(": ")[0] for p in problems} == {
        "model.hidden",
        "optim.lr",
        "optim.betas",
        "seed",
    }


def test_log_root_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for root in (afile, afile / "below"):
        (problem,) = _problems([f"log.root={root}"])
        assert problem.startswith("log.root: ") and "a file, not a directory" in problem


@pytest.mark.parametrize(
    ("raw", "value"), [("1e-3", 1e-3), ("1E5", 1e5), (".5", 0.5), ("2.5e-4", 2.5e-4), ("3", 3.0)]
)
def test_numbers_are_read_as_written(raw: str, value: float, tmp_path: Path) -> None:
    assert load_config(None, [f"optim.lr={raw}"]).optim.lr == value
    assert load_config(None, [f"optim.lr=-{raw}", f"optim.lr={raw}"]).optim.lr == value
    path = tmp_path / "c.yaml"
    path.write_text(f"optim:\n  weight_decay: {raw}\n  lr: {raw}\n")
    config = load_config(path)
    assert config.optim.lr == config.optim.weight_decay == value
    (problem,) = _problems([f"optim.lr=-{raw}"])
    assert problem == f"optim.lr: {-value} is invalid: must be > 0"


def test_yaml_floats_and_non_floats() -> None:
    read = {raw: safe_load(raw) for raw in ("-2e-4", "+1.5E3", "1_000.5", "1e", ".", "12", "0x1f")}
    assert read == {"-2e-4": -2e-4, "+1.5E3": 1500.0, "1_000.5": 1000.5, "1e": "1e", ".": ".",
                    "12": 12, "0x1f": 31}  # fmt: skip
    assert yaml.safe_load("1e-3") == "1e-3"  # PyYAML's own loader is left as it is


def test_nul_in_a_string_built_in_code() -> None:
    with pytest.raises(ConfigError, match=r"^name: 'a\\x00b' is invalid: holds a NUL"):
        build_experiment_config({"name": "a\x00b"})


def test_set_reads_exponent_without_dot() -> None:
    assert load_config(None, ["optim.lr=1e-3"]).optim.lr == 1e-3
    assert load_config(None, ["optim.lr=2E-2"]).optim.lr == 2e-2


def test_alias_bomb_is_refused_in_one_line(tmp_path: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 400
    (problem,) = _problems([], path)
    assert "aliases" in problem and "line 2" in problem and len(problem) < 200


def test_alias_in_set_is_refused() -> None:
    (problem,) = _problems(["name=*x"])
    assert problem.startswith("--set 'name=*x'") and "aliases" in problem


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    (problem,) = _problems([], path)
    assert "nested deeper than" in problem


def test_non_utf8_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    (problem,) = _problems([], path)
    assert "not UTF-8" in problem and "0xe9" in problem


def test_good_names_and_seeds_pass() -> None:
    config = load_config(None, ["name=mnist-dgl_2", f"seed={2**32 - 1}"])
    assert config.seed == 2**32 - 1
