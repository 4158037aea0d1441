"""SimCLRv2's deeper head trains on the StageEngine as on the LocalEngine, and a staged run's
directory (one checkpoint file per rank) is fine-tuned and probed like a one-process run's."""

from __future__ import annotations

from pathlib import Path

import torch

from beyond_backprop.config import ExperimentConfig
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.eval.probe import probe_run
from beyond_backprop.eval.semi_supervised import SemiSupervisedConfig, finetune_run
from beyond_backprop.experiment import build_experiment
from beyond_backprop.tracking.checkpoint import load_latest_checkpoint
from beyond_backprop.tracking.weights import load_run_weights
from tests.integration.staged_harness import spawn
from tests.unit.rules.ssl_helpers import ssl_config

STOP = 5


def _staged_run(rank: int, cfg: ExperimentConfig) -> str:
    from beyond_backprop.run import start_run

    return str(start_run(cfg, stop_after=STOP).run_dir)


def test_a_stopped_staged_v2_run_is_assembled_fine_tuned_and_probed(tmp_path: Path) -> None:
    cfg = ssl_config(
        {"name": "simclr", "head_depth": 3},
        tmp_path=tmp_path,
        engine={"stages": 2, "schedule": "naive", "threads": 1,
                "boundaries": [1]},
    )  # fmt: skip
    outcomes = spawn(tmp_path, _staged_run, cfg)
    assert all(o["ok"] for o in outcomes), outcomes
    run_dir = Path(outcomes[0]["result"])
    local = LocalEngine(build_experiment(cfg))
    local.train(stop_after=STOP)
    step, model, locals_ = load_run_weights(run_dir)
    assert step == STOP
    for ours, theirs in ((model, local.exp.stack.state_dict()),
                         (locals_, local.exp.locals_container.state_dict())):  # fmt: skip
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), key
    # stopped without an evaluation, rank 0's own file holds stage 1's blocks untrained: the
    # per-rank assembly is what gives the trained network
    loaded = load_latest_checkpoint(run_dir, file_name="rank0.pt")
    assert loaded is not None
    assert not torch.equal(loaded[1]["model"]["blocks.1.0.weight"], model["blocks.1.0.weight"])
    result = finetune_run(run_dir, SemiSupervisedConfig(0.05, epochs=1))
    assert result["step"] == STOP and result["head_depth"] == 3
    assert (run_dir / "finetune_f0.05_from1.json").is_file()
    assert sorted(probe_run(run_dir, epochs=1)["accuracy"]) == ["0", "1"]
