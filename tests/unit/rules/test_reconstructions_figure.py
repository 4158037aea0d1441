"""``examples/reconstructions.py`` draws the docs' pictures from a finished run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from beyond_backprop.run import start_run
from tests.unit.rules.ssl_helpers import ssl_config


@pytest.mark.parametrize("rule", [{"name": "inpaint", "overlap": 1}, {"name": "pretext"}])
def test_reconstructions_paste_each_decoder_into_the_hidden_region(
    rule: dict[str, object], tmp_path: Path
) -> None:
    from examples.reconstructions import load_run, main, reconstructions

    config = ssl_config(
        {**rule, "decoder_width": 8},
        tmp_path=tmp_path,
        data={"name": "digits", "batch_size": 64, "train_limit": 128},
        train={"epochs": 1, "log_every": 2},
    )
    run = start_run(config).run_dir
    experiment, step = load_run(run)
    assert step == 2 and not experiment.stack.training
    x = experiment.data.test.x[:4]
    images = reconstructions(experiment, x)
    assert list(images) == ["original", "input", "hidden", "block 0", "block 1"]
    outside = ~images["hidden"]
    assert torch.equal(images["input"][outside], x[outside])
    assert bool((images["input"][images["hidden"]] == 0).all())
    out = main([str(run), "--out", str(tmp_path / "figure.png"), "--n", "4"])
    assert out.stat().st_size > 0
