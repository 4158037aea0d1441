"""Every test here leaves the registries as it found them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.api.registries import isolated_registries


@pytest.fixture(autouse=True)
def _isolated_registries() -> Iterator[None]:
    yield from isolated_registries()
