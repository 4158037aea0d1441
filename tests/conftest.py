"""Shared test setup: one thread, seeded, runs and caches in temporary directories."""

from __future__ import annotations

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_gpu = pytest.mark.skip(reason=f"gpu: torch {torch.__version__} sees no CUDA GPU here")
    slow = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_gpu)
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(slow)


@pytest.fixture(autouse=True)
def _deterministic(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """One thread (float reductions depend on the thread count), a fixed seed, and a private
    cache directory so no test touches the user's cache."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    monkeypatch.setenv("BBP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
