"""gpipe on fake stages: unequal micro-batches are weighted by their size (so the update is
still one-process back-propagation), and with BatchNorm each micro-batch is normalised with
its own statistics (so it is not, unless there is one micro-batch)."""

from __future__ import annotations

import pytest
import torch

from beyond_backprop.config import ExperimentConfig
from tests.helpers import tiny_config
from tests.unit.engines.test_schedules_fake import assert_equal, config, run_fake, run_local


def test_unequal_microbatches_are_weighted_by_their_size() -> None:
    cfg = config("gpipe", 2, microbatches=5)  # 32 rows: 7, 7, 6, 6, 6
    staged, _, _ = run_fake(cfg, False, [2])
    assert_equal(staged, run_local(cfg, False), exact=False)


def _batchnorm(microbatches: int) -> ExperimentConfig:
    return tiny_config(
        model={"arch": "mlp", "hidden": [16, 16, 16], "batch_norm": True},
        engine={"stages": 2, "schedule": "gpipe", "threads": 1, "microbatches": microbatches},
        optim={"name": "sgd", "lr": 0.1, "momentum": 0.9, "schedule": "constant"},
    )


@pytest.mark.parametrize("microbatches", [1, 4])
def test_batchnorm_normalises_each_microbatch(microbatches: int) -> None:
    cfg = _batchnorm(microbatches)
    staged, _, _ = run_fake(cfg, False, [2])
    local = run_local(cfg, False)
    weights = [k for k in staged if k.endswith("weight")]
    same = all(torch.allclose(staged[k], local[k], rtol=1e-5, atol=1e-6) for k in weights)
    assert same == (microbatches == 1)
