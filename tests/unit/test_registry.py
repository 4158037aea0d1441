from __future__ import annotations

import pytest

from beyond_backprop.errors import UnknownNameError
from beyond_backprop.registry import Registry


def make() -> Registry[int]:
    registry: Registry[int] = Registry("widget")

    @registry.register("alpha", "the first")
    def alpha() -> int:
        """Docstring, not used: a description was given."""
        return 1

    @registry.register("beta")
    def beta() -> int:
        """Second widget.

        More text.
        """
        return 2

    return registry  # type: ignore[return-value]


def test_get_and_list_with_descriptions() -> None:
    registry = make()
    assert registry.get("alpha")() == 1  # type: ignore[operator]
    assert [(e.name, e.description) for e in registry.list()] == [
        ("alpha", "the first"),
        ("beta", "Second widget."),
    ]
    assert "beta" in registry and len(registry) == 2


def test_unknown_name_lists_valid_names_and_close_match() -> None:
    with pytest.raises(UnknownNameError) as info:
        make().get("alpah")
    assert str(info.value) == "unknown widget 'alpah' (did you mean 'alpha'?); valid: alpha, beta"


def test_duplicate_registration_is_refused() -> None:
    registry = make()
    with pytest.raises(ValueError, match="already registered"):
        registry.register("alpha")(lambda: 3)
