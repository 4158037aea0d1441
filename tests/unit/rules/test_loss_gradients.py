"""The contrastive losses' gradients equal hand-written references (both views of NT-Xent,
InfoNCE's predictions and targets, the patch grid's contexts and targets), and the rules pass
their options (temperature, negatives, GIM's skip and offset averaging) to them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beyond_backprop.experiment import Experiment, build_experiment
from beyond_backprop.losses import grid_info_nce, info_nce, nt_xent
from beyond_backprop.models.probes import ProbedLocal
from beyond_backprop.models.projection import PatchPredictors
from beyond_backprop.rules.base import Batch, BlockContext, LocalLoss
from beyond_backprop.rules.gim import patch_grid
from tests.unit.rules.ssl_helpers import ssl_config


def _ref_nce(p: Tensor, t: Tensor) -> Tensor:
    """CPC Eq. 4 one prediction at a time, differentiable: every other target a negative."""
    losses = []
    for i in range(len(p)):
        scores = torch.stack([p[i] @ t[j] for j in [i, *(j for j in range(len(t)) if j != i)]])
        losses.append(torch.logsumexp(scores, 0) - scores[0])
    return torch.stack(losses).mean()


def _ref_nt_xent(z1: Tensor, z2: Tensor, t: float) -> Tensor:
    z = [F.normalize(v, dim=0) for v in [*z1, *z2]]
    n, losses = len(z1), []
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        others = [j for j in range(2 * n) if j != i]
        scores = torch.stack([z[i] @ z[j] / t for j in others])
        losses.append(torch.logsumexp(scores, 0) - z[i] @ z[positive] / t)
    return torch.stack(losses).mean()


def _grads(loss: Tensor, inputs: list[Tensor]) -> list[Tensor]:
    return list(torch.autograd.grad(loss, inputs))


def test_nt_xent_gradient_reaches_both_views_as_the_reference() -> None:
    z1, z2 = (torch.randn(5, 4, dtype=torch.float64, requires_grad=True) for _ in range(2))
    ours = _grads(nt_xent(z1, z2, 0.3), [z1, z2])
    for got, want in zip(ours, _grads(_ref_nt_xent(z1, z2, 0.3), [z1, z2]), strict=True):
        torch.testing.assert_close(got, want)
        assert float(got.abs().max()) > 1e-3


def test_info_nce_gradient_reaches_predictions_and_targets() -> None:
    p, t = (torch.randn(6, 3, dtype=torch.float64, requires_grad=True) for _ in range(2))
    for got, want in zip(
        _grads(info_nce(p, t), [p, t]), _grads(_ref_nce(p, t), [p, t]), strict=True
    ):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("skip", [0, 1])
def test_grid_info_nce_gradient_reaches_contexts_and_targets(skip: int) -> None:
    b, d, rows, cols = 2, 3, 4, 2
    z = torch.randn(b, d, rows, cols, dtype=torch.float64, requires_grad=True)
    maps = [nn.Linear(d, d, bias=False).double() for _ in range(2)]
    terms = grid_info_nce(z, maps, skip=skip)
    reference = []
    for k, w in enumerate(maps, start=1):
        ahead = k + skip
        cells = [(i, r, c) for i in range(b) for r in range(rows - ahead) for c in range(cols)]
        p = torch.stack([w(z[i, :, r, c]) for i, r, c in cells])
        t = torch.stack([z[i, :, r + ahead, c] for i, r, c in cells])
        reference.append(_ref_nce(p, t))
        torch.testing.assert_close(terms[f"infonce_k{k}"], reference[-1])
    params = [z, *(w.weight for w in maps)]
    ours = _grads(sum(terms.values()), params)  # type: ignore[arg-type]
    for got, want in zip(ours, _grads(sum(reference), params), strict=True):  # type: ignore[arg-type]
        torch.testing.assert_close(got, want)


def _block_terms(experiment: Experiment, k: int, batch: Batch) -> dict[str, Tensor]:
    """Block k's terms on ``batch`` (the blocks below run without gradients)."""
    x = batch.x
    with torch.no_grad():
        for block in experiment.stack.blocks[:k]:
            x = block(x)
    h = experiment.stack.blocks[k](x)
    ctx = BlockContext(k, len(experiment.stack), x, h, batch, experiment.locals[k], {}, 0, 0)
    objective = experiment.rule.block_objective(k, ctx)
    assert isinstance(objective, LocalLoss)
    return dict(objective.terms)


@pytest.mark.parametrize("rule", ["loco"])
def test_contrastive_rules_use_their_temperature(rule: str) -> None:
    experiment = build_experiment(ssl_config({"name": rule, "temperature": 0.2}))
    data = experiment.data.train
    batch = experiment.rule.transform_batch(Batch(data.x[:8], data.y[:8]), 0)
    terms = _block_terms(experiment, 0, batch)
    local = experiment.locals[0]
    assert isinstance(local, ProbedLocal) and local.objective is not None
    with torch.no_grad():
        z1, z2 = local.objective(experiment.stack.blocks[0](batch.x)).chunk(2)
    torch.testing.assert_close(terms["nt_xent"].detach(), nt_xent(z1, z2, 0.2))
    assert not torch.allclose(nt_xent(z1, z2, 0.2), nt_xent(z1, z2, 0.5))


@pytest.mark.parametrize(
    ("options", "negatives", "skip", "mean"),
    [
        ({"negatives": 3}, 3, 1, True),  # the defaults: the authors' skip_step 1, averaged
        ({"negatives": None, "skip_step": 0, "offset_reduction": "sum"}, None, 0, False),
    ],
)
def test_gim_passes_negatives_skip_and_reduction(
    options: dict[str, object], negatives: int | None, skip: int, mean: bool
) -> None:
    rule = {"name": "gim", "patch_size": 2, "patch_stride": 2, "offsets": 2, **options}
    experiment = build_experiment(ssl_config(rule, channels=(4,)))
    data = experiment.data.train
    batch = experiment.rule.transform_batch(Batch(data.x[:4], data.y[:4]), 0)
    torch.manual_seed(5)
    terms = _block_terms(experiment, 0, batch)
    local = experiment.locals[0]
    assert isinstance(local, ProbedLocal) and isinstance(local.objective, PatchPredictors)
    with torch.no_grad():
        z = patch_grid(experiment.stack.blocks[0](batch.x), 4, 4)
        torch.manual_seed(5)
        expected = grid_info_nce(z, list(local.objective.maps), negatives, skip)
    for key, value in expected.items():
        torch.testing.assert_close(terms[key].detach(), value / 2 if mean else value)
