"""A rule's wiring follows its options: purely local modes send nothing between blocks, and
``default_wirings`` lists every rule with its default options."""

from __future__ import annotations

from typing import Any

import pytest

from beyond_backprop.rules import RULES, Wiring, default_wirings

CASES = [
    ("simclr", {}, "activation", "gradient"),
    ("simclr", {"mode": "per_block"}, "activation", "none"),
    ("loco", {}, "activation", "overlap"),
    ("loco", {"overlap": False}, "activation", "none"),
    ("local_parallel", {"chunk": 1, "overlap": 0}, "activation", "none"),
    ("local_parallel", {"chunk": 2, "overlap": 0}, "activation", "gradient"),
    ("local_parallel", {"chunk": 1, "overlap": 1}, "activation", "overlap"),
    ("local_parallel", {"chunk": 2, "overlap": 1}, "activation", "overlap"),
    ("dni", {}, "activation", "delayed_gradient"),
    ("dni", {"synthetic_inputs": True}, "synthetic", "delayed_gradient"),
    ("inpaint", {}, "activation", "none"),
    ("inpaint", {"mode": "end_to_end"}, "activation", "gradient"),
    ("pretext", {}, "activation", "none"),
    ("pretext", {"mode": "end_to_end"}, "activation", "gradient"),
]


@pytest.mark.parametrize(("rule", "options", "forward", "backward"), CASES)
def test_wiring_follows_the_options(
    rule: str, options: dict[str, Any], forward: str, backward: str
) -> None:
    cls = RULES.get(rule)
    wiring = cls(cls.Config(**options)).wiring
    assert (wiring.forward, wiring.backward) == (forward, backward)
    assert wiring.stale_ok == cls.default_wiring.stale_ok  # options never change staleness


def test_default_wirings_are_every_rule_with_its_default_options() -> None:
    wirings = default_wirings()
    assert sorted(wirings) == RULES.names()
    for name, wiring in wirings.items():
        cls = RULES.get(name)
        assert wiring == cls(cls.Config()).wiring
    assert wirings["backprop"] == Wiring("activation", "gradient")
    assert wirings["dgl"].stale_ok
