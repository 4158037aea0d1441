"""``inpaint`` per block on two stages (pipelined) leaves bitwise the LocalEngine's parameters,
even when the ranks' global generators differ: the masks come from the step, not from a
per-process random stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from beyond_backprop.config import ExperimentConfig
from beyond_backprop.engines.local import StageEngine
from tests.integration.staged_harness import (
    experiment_for,
    gathered,
    spawn,
    train_local,
    train_staged,
)
from tests.integration.test_staged import assert_states, ok
from tests.unit.rules.ssl_helpers import ssl_config


def _reseeded_stages(rank: int, config: ExperimentConfig) -> dict[str, Any]:
    """A staged run in which rank 1's global generator is moved away from rank 0's."""
    engine = StageEngine(experiment_for(config, False), [1])
    if rank == 1:
        torch.manual_seed(1234)
    engine.train()
    return gathered(engine, rank)


def test_pipelined_inpaint_is_bitwise_the_local_engine(tmp_path: Path) -> None:
    cfg = ssl_config(
        {"name": "inpaint", "masks": {"kind": "random_blocks", "blocks": 2}, "decoder_width": 8},
        channels=(4, 6, 8),
        data={"name": "digits", "batch_size": 32, "train_limit": 128},
        train={"epochs": 2, "log_every": 2},
        engine={"stages": 2, "schedule": "pipelined", "threads": 1},
    )
    staged = ok(spawn(tmp_path, _reseeded_stages, cfg))
    local = train_local(cfg, False)
    assert_states(staged["stack"], local["stack"], exact=True)
    assert_states(staged["locals"], local["locals"], exact=True)
    initial = experiment_for(cfg, False).stack.state_dict()
    assert not torch.equal(initial["blocks.2.0.weight"], local["stack"]["blocks.2.0.weight"])


@pytest.mark.parametrize("schedule", ["naive", "gpipe"])
def test_end_to_end_pretext_on_two_stages_equals_one_process(schedule: str, tmp_path: Path) -> None:
    """End to end the gradient crosses the stage boundary: ``naive`` is bitwise the one-process
    run; ``gpipe`` splits the batch, its targets and masks (``Batch.views``) into
    micro-batches, and equals it up to float summation order (every image hides as many X2
    pixels, so the mean over micro-batches is the batch's mean; no BatchNorm, whose batch
    statistics would differ per micro-batch)."""
    cfg = ssl_config(
        {"name": "pretext", "mode": "end_to_end", "decoder_width": 8},
        model={"arch": "cnn", "channels": [4, 8], "pool": [True, True], "fc_width": 0,
               "batch_norm": False},
        data={"name": "digits", "batch_size": 32, "train_limit": 128},
        train={"epochs": 1, "log_every": 2},
        engine={"stages": 2, "schedule": schedule, "threads": 1,
                "microbatches": 4},
    )  # fmt: skip
    staged = ok(spawn(tmp_path, train_staged, cfg, False, [1]))
    local = train_local(cfg, False)
    assert_states(staged["stack"], local["stack"], exact=schedule == "naive")
    assert_states(staged["locals"], local["locals"], exact=schedule == "naive")
