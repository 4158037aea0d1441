from __future__ import annotations

from pathlib import Path

import pytest

from beyond_backprop.config import dump_config, load_config
from beyond_backprop.errors import ConfigError
from beyond_backprop.models.cnn import CNNConfig
from beyond_backprop.rules import RULES
from beyond_backprop.rules.backprop import Backprop

ROOT = Path(__file__).resolve().parents[3]
PRESETS = sorted((ROOT / "configs").rglob("*.yaml"))


def problems(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value.problems


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_shipped_preset_loads_and_round_trips(preset: Path, tmp_path: Path) -> None:
    if preset.parent.name == "suites":
        pytest.skip("suites are not experiment configs")
    config = load_config(preset)
    saved = tmp_path / "again.yaml"
    saved.write_text(dump_config(config))
    assert load_config(saved) == config


def test_presets_exist() -> None:
    names = {p.relative_to(ROOT / "configs").as_posix() for p in PRESETS}
    assert {"mnist/backprop.yaml", "smoke/backprop.yaml"} <= names


def test_sections_select_their_typed_options(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: {arch: cnn, channels: [4, 8], pool: [true, false]}\n")
    config = load_config(path, ["optim.lr=0.5", "rule.label_smoothing=0.1"])
    assert config.model.options == CNNConfig(channels=(4, 8), pool=(True, False))
    assert config.optim.lr == 0.5
    assert config.rule.options == Backprop.Config(label_smoothing=0.1)


def test_every_problem_is_reported_at_once_one_line_each(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "rule: {name: backprp}\noptim: {lr: -0.1, name: sgdd}\ntrian: {epochs: 3}\n"
        "data: {batch_size: many}\n",
    )
    rules = ", ".join(RULES.names())
    assert found == [
        "trian: unknown key (did you mean 'train'?); valid: name, seed, deterministic, data, "
        "model, rule, engine, optim, train, log",
        "data.batch_size: 'many' is not a valid int",
        f"rule.name: unknown rule 'backprp' (did you mean 'backprop'?); valid: {rules}",
        "optim.name: 'sgdd' is not one of 'sgd', 'adam', 'adamw' (did you mean 'sgd'?)",
        # the value checks of a section run even when one of its fields has the wrong type
        "optim.lr: -0.1 is invalid: must be > 0",
    ]


def test_value_checks_after_types(tmp_path: Path) -> None:
    found = problems(tmp_path, "optim: {lr: -0.1, momentum: 1.5}\ntrain: {epochs: 0}\n")
    assert found == [
        "optim.lr: -0.1 is invalid: must be > 0",
        "optim.momentum: 1.5 is invalid: must be in [0, 1)",
        "train.epochs: 0 is invalid: must be >= 1",
    ]


def test_unknown_dataset_and_architecture(tmp_path: Path) -> None:
    found = problems(tmp_path, "data: {name: mnsit}\nmodel: {arch: mlpp}\n")
    assert found[0].startswith("data.name: unknown dataset 'mnsit' (did you mean 'mnist'?)")
    assert found[1].startswith("model.arch: unknown architecture 'mlpp' (did you mean 'mlp'?)")


def test_typo_in_architecture_option(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "model: {arch: mlp, hiden: [8]}\n")
    assert line.startswith("model.hiden: unknown key (did you mean 'hidden'?)")


def test_bad_overrides(tmp_path: Path) -> None:
    found = problems(tmp_path, "seed: 1\n", ("optim.lr", "seed.x=1", "train.epochs=[1"))
    assert found == [
        "--set 'optim.lr': expected key.path=value, e.g. optim.lr=0.05",
        "--set 'seed.x=1': seed is 1, not a section",
        "--set 'train.epochs=[1': cannot parse the value '[1'",
    ]


def test_malformed_and_missing_files(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "optim: {lr: [\n")
    assert "c.yaml: line" in line
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")


def test_tuple_lengths_and_nulls(tmp_path: Path) -> None:
    found = problems(tmp_path, "optim: {betas: [0.9]}\ntrain: {epochs: null}\n")
    assert found == [
        "optim.betas: expected a list of 2 values, got [0.9]",
        "train.epochs: null is not allowed here (expected int)",
    ]
