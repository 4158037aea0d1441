"""``bench_scaling``'s cases: K stages hold K blocks that learn."""

from __future__ import annotations

import argparse

from benchmarks.bench_scaling import case, idle_top_blocks


def test_a_classifier_that_never_runs_in_training_shares_the_top_stage() -> None:
    args = argparse.Namespace(batch=32, forward_ms=20.0, backward_ms=40.0, steps=24, warmup=4,
                              local_steps=8, microbatches=0, staleness=None)  # fmt: skip
    assert idle_top_blocks("loco", 9) == 1  # self-supervised: the probes stand in for it
    assert idle_top_blocks("dgl", 9) == 0
    assert case("loco", 8, args, "staged", "stale_overlap")["model"]["blocks"] == 9
    assert case("loco", 8, args, "local", None)["model"]["blocks"] == 9
    assert case("dgl", 8, args, "staged", "pipelined")["model"]["blocks"] == 8
    assert case("dfa", 8, args, "staged", "stale_error")["engine_options"] == {"staleness": None}
