"""gpipe on fake stages: unequal micro-batches are weighted by their size (so the update is
still one-process back-propagation), and with BatchNorm each micro-batch is normalised with
its own statistics (so it is not, unless there is one micro-batch), unless
``engine.gpipe_batchnorm: batch`` asks for the whole batch's (then it is)."""

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


def _batchnorm(microbatches: int, stages: int = 2, stats: str = "microbatch") -> ExperimentConfig:
    return tiny_config(
        model={"arch": "mlp", "hidden": [16, 16, 16], "batch_norm": True},
        engine={
            "stages": stages,
            "schedule": "gpipe",
            "threads": 1,
            "microbatches": microbatches,
            "gpipe_batchnorm": stats,
        },
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


@pytest.mark.parametrize(("microbatches", "boundaries"), [(4, [2]), (5, [1, 3])])
def test_whole_batch_batchnorm_equals_one_process(microbatches: int, boundaries: list[int]) -> None:
    # [1, 3]: the top stage holds only the classifier (no BatchNorm), so it keeps micro-batching
    # between two stages that gather the whole batch; 5 micro-batches of 32 rows are unequal
    cfg = _batchnorm(microbatches, len(boundaries) + 1, "batch")
    staged, _, _ = run_fake(cfg, False, boundaries)
    local = run_local(cfg, False)
    assert any("running_mean" in k for k in staged)
    for key, value in staged.items():  # weights, biases and running statistics
        torch.testing.assert_close(value, local[key], rtol=1e-5, atol=1e-6, msg=key)
