"""A lost rank surfaces in every collective as ``StageError`` naming the peer (2 spawned ranks)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from beyond_backprop.config import ExperimentConfig
from beyond_backprop.engines.local import StageEngine
from beyond_backprop.run.group import DistGroup
from tests.helpers import tiny_config
from tests.integration.staged_harness import experiment_for, spawn


def _dies_at_a_stop_check(rank: int, cfg: ExperimentConfig) -> str:
    engine = StageEngine(experiment_for(cfg, True), [2])

    def should_stop() -> bool:
        if rank == 1 and engine.step == 3:
            os._exit(17)  # gone without a word, as a killed rank is
        return False

    engine.should_stop = should_stop
    engine.train()
    return "finished"


def test_pipelined_rank_lost_at_the_stop_check_names_it(tmp_path: Path) -> None:
    # stage 0 of a forward-only pipeline only sends (non-blocking): it meets the lost rank
    # first in the stop agreement's all_reduce
    cfg = tiny_config(
        model={"arch": "mlp", "hidden": [16, 16, 16]},
        engine={"stages": 2, "schedule": "pipelined", "threads": 1, "stop_check_every": 1},
    )
    rank0, rank1 = spawn(tmp_path, _dies_at_a_stop_check, cfg, timeout=40)
    assert rank1 == {"ok": False, "exitcode": 17}
    assert rank0["error"].startswith("StageError: stage 0 (rank 0) could not agree on a stop"), (
        rank0
    )
    assert "with stage(s) 1 (rank(s) 1)" in rank0["error"]


def _collective_after_peer_died(rank: int, what: str) -> str:
    group = DistGroup()
    group.barrier()  # connected first: the peer is then lost at once, not after the timeout
    if rank == 1:
        os._exit(17)
    if what == "barrier":
        group.barrier()
    else:
        group.share(lambda: 1)  # broadcast_object_list
    return "finished"


@pytest.mark.parametrize("what", ["barrier", "share"])
def test_group_collectives_name_the_lost_rank(what: str, tmp_path: Path) -> None:
    rank0, _ = spawn(tmp_path, _collective_after_peer_died, what, timeout=40)
    assert rank0["error"].startswith("StageError: stage 0 (rank 0) could not"), rank0
    assert "(rank(s) 1)" in rank0["error"]
