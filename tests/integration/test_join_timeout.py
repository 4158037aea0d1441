"""A stage whose peers never join ends with ``StageError`` (exit 4) after ``engine.timeout_s``."""

from __future__ import annotations

from pathlib import Path

import pytest

from beyond_backprop.engines.channel import StageError
from beyond_backprop.engines.process_group import init_process_group
from tests.helpers import tiny_config


def test_a_peer_that_never_joins(tmp_path: Path) -> None:
    config = tiny_config(engine={"stages": 2, "timeout_s": 1.0})
    with pytest.raises(StageError, match=r"stage 0 \(rank 0\) could not join the 2 stages"):
        init_process_group(config, 0, 2, init_method=f"file://{tmp_path / 'store'}")
