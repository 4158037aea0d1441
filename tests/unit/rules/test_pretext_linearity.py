"""``examples/pretext_linearity.py`` (the check of arXiv 2008.01064) runs end to end on a
seconds-long pretext run; its figures are in docs/methods/pretext.md."""

from __future__ import annotations

import json
from pathlib import Path

from beyond_backprop.run import start_run
from tests.unit.rules.ssl_helpers import ssl_config


def test_linearity_check_compares_three_feature_kinds(tmp_path: Path) -> None:
    from examples.pretext_linearity import main, probe_epochs

    config = ssl_config(
        {"name": "pretext", "decoder_width": 8},
        tmp_path=tmp_path,
        data={"name": "digits", "batch_size": 64, "train_limit": 256},
        train={"epochs": 1, "log_every": 2},
    )
    run = start_run(config).run_dir
    result = main([str(run), "--sizes", "40", "200", "--out", str(tmp_path / "out")])
    assert set(result["accuracy"]) == {"pretext", "random init", "raw X1"}
    assert set(result["accuracy"]["pretext"]["40"]) == {"0", "1"}  # two encoder blocks
    assert set(result["accuracy"]["raw X1"]["200"]) == {"0"}
    values = [v for kind in result["accuracy"].values() for n in kind.values() for v in n.values()]
    assert all(0 <= v <= 1 for v in values)
    assert (tmp_path / "out" / "pretext_linearity.png").stat().st_size > 0
    assert json.loads((tmp_path / "out" / "pretext_linearity.json").read_text())["sizes"] == [
        40,
        200,
    ]
    assert probe_epochs(100) == 200 and probe_epochs(10000) == 10
