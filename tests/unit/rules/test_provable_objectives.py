"""The provable rule's block objectives are the ones its functions define: the per-patch
cross-entropy in the fit phase, k-means seeded by farthest-point traversal in the cluster
phase (1803.09522, Sec. 4)."""

from __future__ import annotations

import torch

from beyond_backprop.experiment import Experiment, build_experiment
from beyond_backprop.models.hierarchical import PatchLayer
from beyond_backprop.rules.base import Batch, BlockContext, LocalLoss
from beyond_backprop.rules.provable import kmeans_objective, patch_cross_entropy, seed_centroids
from tests.helpers import tiny_config
from tests.unit.rules.test_provable import LAYERWISE


def _built() -> Experiment:
    experiment = build_experiment(tiny_config(**LAYERWISE))
    experiment.rule.total_epochs(2, len(experiment.stack))  # the trainer asks this first
    return experiment


def _objective(experiment: Experiment, epoch: int) -> LocalLoss:
    data = experiment.data.train
    x, y = data.x[:64], data.y[:64]
    h = experiment.stack.blocks[0](x)

    ctx = BlockContext(0, len(experiment.stack), x, h, Batch(x, y), None, {}, 0, epoch)
    objective = experiment.rule.block_objective(0, ctx)
    assert isinstance(objective, LocalLoss)
    return objective


def test_fit_phase_learns_the_per_patch_cross_entropy() -> None:
    experiment = _built()
    layer = experiment.stack.blocks[0]
    assert isinstance(layer, PatchLayer)
    data = experiment.data.train
    expected = patch_cross_entropy(layer.scores(data.x[:64]), data.y[:64])
    torch.testing.assert_close(_objective(experiment, 0).terms["ce"], expected)


def test_cluster_phase_seeds_the_centroids_by_farthest_points_then_runs_kmeans() -> None:
    experiment = _built()
    layer = experiment.stack.blocks[0]
    assert isinstance(layer, PatchLayer) and layer.centroids is not None
    cluster_epoch = next(
        e for e in range(10) if experiment.rule.phase(e, len(experiment.stack)) == (0, "cluster")
    )
    with torch.no_grad():
        points = layer.embed(experiment.data.train.x[:64])
    loss = _objective(experiment, cluster_epoch).terms["kmeans"]
    seeds = seed_centroids(points, layer.centroids.shape[0])
    torch.testing.assert_close(layer.centroids.detach(), seeds)
    torch.testing.assert_close(loss, kmeans_objective(layer, points))
    # the first points of a batch are not the seeds (or the test could not tell them apart)
    assert not torch.equal(seeds, points[: len(seeds)])
