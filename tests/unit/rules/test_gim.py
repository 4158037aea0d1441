"""Greedy InfoMax: no gradient crosses a module boundary; each module's update is exactly the
gradient of its own InfoNCE loss on its patch grid."""

from __future__ import annotations

import pytest
import torch

from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.engines.step import backward_blocks, forward_blocks
from beyond_backprop.experiment import Experiment, build_experiment
from beyond_backprop.losses import grid_info_nce
from beyond_backprop.models.probes import ProbedLocal
from beyond_backprop.models.projection import PatchPredictors
from beyond_backprop.rules.base import Batch, BlockContext
from beyond_backprop.rules.gim import cut_patches, patch_grid
from tests.unit.rules.ssl_helpers import ssl_config

# the summed, adjacent-row form (skip_step 0), so the hand-written references stay simple
RULE = {
    "name": "gim",
    "patch_size": 4,
    "patch_stride": 2,
    "offsets": 2,
    "negatives": None,
    "skip_step": 0,
    "offset_reduction": "sum",
}


def gim(**options: object) -> Experiment:
    return build_experiment(ssl_config({**RULE, **options}))


def a_batch(experiment: Experiment) -> Batch:
    data = experiment.data.train
    return experiment.rule.transform_batch(Batch(data.x[:8], data.y[:8]), 0)


def test_cut_patches_and_patch_grid_keep_positions() -> None:
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    patches, rows, cols = cut_patches(x, 4, 2)
    assert (rows, cols) == (3, 3) and patches.shape == (18, 1, 4, 4)
    grid = patch_grid(patches, rows, cols)  # each patch's mean, back on the grid
    for i in range(2):
        for r in range(3):
            for c in range(3):
                expected = x[i, 0, 2 * r : 2 * r + 4, 2 * c : 2 * c + 4]
                assert torch.equal(patches[(i * 3 + r) * 3 + c, 0], expected)
                assert grid[i, 0, r, c] == expected.mean()


def test_no_gradient_crosses_a_module_boundary() -> None:
    """Block 1's loss alone leaves block 0 without any gradient."""
    experiment = gim()
    stack, rule = experiment.stack, experiment.rule
    assert not rule.wiring.needs_input_grad
    batch = a_batch(experiment)
    pairs = forward_blocks(list(stack.blocks[:-1]), 0, batch.x, rule.wiring.needs_input_grad)
    x1, h1 = pairs[1]
    assert not x1.requires_grad
    objective = rule.block_objective(1, _context(experiment, 1, x1, h1, batch))
    torch.stack(list(objective.terms.values())).sum().backward()
    assert all(p.grad is None for p in stack.blocks[0].parameters())
    assert all(p.grad is not None for p in stack.blocks[1].parameters())


def test_each_module_learns_from_its_own_loss_exactly() -> None:
    experiment = gim()
    stack = experiment.stack
    batch = a_batch(experiment)
    pairs = forward_blocks(list(stack.blocks[:-1]), 0, batch.x, False)
    backward_blocks(experiment.rule, experiment.locals, pairs, 0, len(stack), batch, 0, 0)
    x = batch.x
    for k in range(len(stack) - 1):
        h = stack.blocks[k](x.detach())
        local = experiment.locals[k]
        assert isinstance(local, ProbedLocal) and isinstance(local.objective, PatchPredictors)
        z = patch_grid(h, 3, 3)
        loss = sum(grid_info_nce(z, list(local.objective.maps)).values())
        expected = torch.autograd.grad(loss, list(stack.blocks[k].parameters()))
        for p, g in zip(stack.blocks[k].parameters(), expected, strict=True):
            assert torch.allclose(p.grad, g, rtol=1e-5, atol=1e-8)  # type: ignore[arg-type]
        x = h


def test_training_runs_and_predictions_are_per_block_probes() -> None:
    experiment = gim(negatives=4)
    engine = LocalEngine(experiment)
    engine.train_step(Batch(experiment.data.train.x[:16], experiment.data.train.y[:16]), 0)
    out = experiment.rule.predictions(
        experiment.stack, experiment.locals, experiment.data.test.x[:3]
    )
    assert sorted(out, key=str) == [0, 1, None]
    assert all(v.shape == (3, 10) for v in out.values())


def test_architectures_that_cannot_take_patches_are_refused() -> None:
    with pytest.raises(ValueError, match=r"model\.arch=cnn"):
        build_experiment(ssl_config(RULE, model={"arch": "mlp", "hidden": [8, 8]}))
    with pytest.raises(ValueError, match="offsets"):
        gim(offsets=3)


def _context(
    experiment: Experiment, k: int, x_in: torch.Tensor, h_out: torch.Tensor, batch: Batch
) -> BlockContext:
    n = len(experiment.stack)
    return BlockContext(k, n, x_in, h_out, batch, experiment.locals[k], {}, 0, 0)
