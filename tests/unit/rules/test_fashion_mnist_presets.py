"""A Fashion-MNIST preset that says it is "the same run as" an MNIST preset is: the same model,
rule, optimiser, training length and engine; only the dataset (and the run's name) differ."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from beyond_backprop.config import load_config

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
SAME_RUN = re.compile(r"the same run as (configs/mnist/\w+\.yaml)")
CLAIMS = sorted(
    (path.name, match.group(1))
    for path in (CONFIGS / "fashion_mnist").glob("*.yaml")
    if (match := SAME_RUN.search(path.read_text()))
)


def test_the_claims_are_found() -> None:
    assert ("forward_gradient.yaml", "configs/mnist/forward_gradient.yaml") in CLAIMS


@pytest.mark.parametrize(("fashion", "mnist"), CLAIMS)
def test_fashion_mnist_preset_is_the_mnist_run(fashion: str, mnist: str) -> None:
    ours = load_config(CONFIGS / "fashion_mnist" / fashion, [])
    theirs = load_config(CONFIGS.parent / mnist, [])
    assert ours.data.name == "fashion_mnist"
    as_mnist = replace(ours, name=theirs.name, data=replace(ours.data, name=theirs.data.name))
    assert as_mnist == theirs
