"""Lee et al.'s psi(X1) is the regressor's prediction of X2: ``named_features`` gives it beside
the encoder blocks' outputs phi_k(X1), each under its own name, and both can be probed."""

from __future__ import annotations

import pytest
import torch

from beyond_backprop.eval.probe import fit_probes
from beyond_backprop.experiment import build_experiment
from beyond_backprop.models.probes import ProbedLocal
from beyond_backprop.rules.pretext import Pretext
from beyond_backprop.rules.reconstruction import ReconstructionHead
from tests.unit.rules.ssl_helpers import ssl_config


@pytest.mark.parametrize("mode", ["per_block", "end_to_end"])
def test_psi_is_the_decoders_prediction_of_x2(mode: str) -> None:
    experiment = build_experiment(ssl_config({"name": "pretext", "mode": mode}))
    rule, stack, locals_ = experiment.rule, experiment.stack, experiment.locals
    assert isinstance(rule, Pretext)
    x = experiment.data.train.x[:8]
    with torch.no_grad():
        named = rule.named_features(stack, locals_, x)
        phis = rule.block_features(stack, x)
    heads = [k for k, m in enumerate(locals_) if isinstance(m, ProbedLocal) and m.objective]
    assert sorted(named) == sorted(
        [f"phi_{k}" for k in range(len(phis))] + [f"psi_{k}" for k in heads]
    )
    mask = rule.hidden(x)
    for k in heads:
        local = locals_[k]
        assert isinstance(local, ProbedLocal) and isinstance(local.objective, ReconstructionHead)
        with torch.no_grad():
            image = local.objective.decoder(phis[k])
        assert named[f"psi_{k}"].shape == (8, x.shape[1] * int(mask.sum()))
        torch.testing.assert_close(named[f"psi_{k}"], image[:, :, mask].flatten(1))
        torch.testing.assert_close(named[f"phi_{k}"], phis[k])
    probes = fit_probes(
        lambda batch: list(rule.named_features(stack, locals_, batch).values()),
        experiment.data.train,
        experiment.data.test,
        epochs=1,
    )
    assert len(probes) == len(named)
