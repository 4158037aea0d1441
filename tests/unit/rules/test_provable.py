"""Oracles for the layerwise algorithm of 1803.09522: its schedule, its two objectives, that
each phase changes only its own parameters, and that it learns the generative model."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.experiment import build_experiment
from beyond_backprop.models.hierarchical import HierarchicalConfig, PatchLayer
from beyond_backprop.rules.base import Batch
from beyond_backprop.rules.provable import (
    Provable,
    kmeans_objective,
    patch_cross_entropy,
    seed_centroids,
)
from tests.helpers import tiny_config

LAYERWISE: dict[str, Any] = {
    "data": {"name": "hierarchical_digits_l2", "train_limit": 512, "test_limit": 200},
    "model": {"arch": "hierarchical", "width": 16, "patch": 4, "clusters": [12]},
    "rule": {"name": "provable", "cluster_epochs": 1},
    "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "schedule": "constant"},
}


def test_schedule_fits_then_clusters_each_layer_then_fits_the_top() -> None:
    rule = Provable(Provable.Config(cluster_epochs=1))
    assert rule.total_epochs(2, 3) == 2 * 3 + 1 * 2
    phases = [rule.phase(e, 3) for e in range(8)]
    assert phases == [
        (0, "fit"), (0, "fit"), (0, "cluster"),
        (1, "fit"), (1, "fit"), (1, "cluster"),
        (2, "fit"), (2, "fit"),
    ]  # fmt: skip
    assert [list(rule.active_blocks(e, 3)) for e in range(8)] == [[k] for k, _ in phases]


def test_fit_objective_is_the_per_patch_cross_entropy_of_a_two_layer_net() -> None:
    torch.manual_seed(0)
    layer = PatchLayer(2, 5, 3, 4, clusters=3)
    x, y = torch.randn(6, 2, 6, 6), torch.randint(4, (6,))
    # every 3x3 patch by hand: relu(W p + b) then V h + c, one cross-entropy per patch
    patches = F.unfold(x, 3, stride=3).transpose(1, 2)  # (6, 4 patches, 18)
    w, b = layer.conv.weight.view(5, -1), layer.conv.bias
    assert layer.head is not None
    v, c = layer.head.weight.view(4, 5), layer.head.bias
    logits = F.relu(patches @ w.T + b) @ v.T + c  # (6, 4, 4)
    expected = F.cross_entropy(logits.reshape(-1, 4), y.repeat_interleave(4))
    torch.testing.assert_close(patch_cross_entropy(layer.scores(x), y), expected)


def test_kmeans_step_of_rate_one_moves_each_centroid_onto_its_mean() -> None:
    layer = PatchLayer(1, 2, 1, 3, clusters=3)
    assert layer.centroids is not None
    with torch.no_grad():
        layer.centroids.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]))
    layer.seeded.fill_(True)
    points = torch.tensor([[0.9, 0.1, 0.0], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    optimizer = torch.optim.SGD([layer.centroids], lr=1.0)
    kmeans_objective(layer, points).backward()
    optimizer.step()
    expected = torch.stack([points[:2].mean(0), points[2:].mean(0), torch.tensor([0, 0, 1.0])])
    torch.testing.assert_close(layer.centroids.detach(), expected)


def test_farthest_point_seeding_takes_one_point_per_group() -> None:
    groups = torch.eye(4) * 10
    points = torch.cat([groups + 0.01 * torch.randn(4, 4) for _ in range(5)])
    seeds = seed_centroids(points, 4)
    assert sorted(int(s.argmax()) for s in seeds) == [0, 1, 2, 3]


def test_clustering_layer_outputs_the_one_hot_of_the_nearest_centroid() -> None:
    torch.manual_seed(0)
    layer = PatchLayer(1, 4, 2, 3, clusters=5)
    assert layer.centroids is not None
    with torch.no_grad():
        layer.centroids.copy_(torch.rand(5, 3))
    x = torch.randn(2, 1, 4, 4)
    out = layer(x)
    assert out.shape == (2, 5, 2, 2)
    probs = layer.scores(x).softmax(dim=1)  # (2, 3, 2, 2)
    for n in range(2):
        for i in range(2):
            for j in range(2):
                nearest = int(((layer.centroids - probs[n, :, i, j]) ** 2).sum(1).argmin())
                assert out[n, :, i, j].tolist() == F.one_hot(torch.tensor(nearest), 5).tolist()


def test_each_phase_changes_only_its_own_parameters() -> None:
    config = tiny_config(**{**LAYERWISE, "train": {"epochs": 1}})
    experiment = build_experiment(config)
    engine = LocalEngine(experiment)
    assert engine.epochs == 3
    stack = experiment.stack
    x, y = experiment.data.train.x[:64], experiment.data.train.y[:64]
    conv0 = ["blocks.0.conv.weight", "blocks.0.conv.bias", "blocks.0.head.weight"]
    changed_by_epoch = {0: conv0, 1: ["blocks.0.centroids"], 2: ["blocks.1.conv.weight"]}
    for epoch, expected_changed in changed_by_epoch.items():
        before = copy.deepcopy(stack.state_dict())
        engine.train_step(Batch(x, y), epoch)
        after = stack.state_dict()
        changed = {name for name in before if not torch.equal(before[name], after[name])}
        owner = f"blocks.{0 if epoch < 2 else 1}."
        assert set(expected_changed) <= changed
        assert all(name.startswith(owner) for name in changed), changed
        if epoch == 1:  # k-means touches the centroids (and their seeding flag) only
            assert changed == {"blocks.0.centroids", "blocks.0.seeded"}
        if epoch == 0:
            assert "blocks.0.centroids" not in changed


def test_a_one_level_instance_is_learned_by_a_single_layer(tmp_path: Any) -> None:
    config = tiny_config(
        tmp_path,
        data={"name": "hierarchical_digits_l1", "train_limit": 1000, "test_limit": 500},
        model={"arch": "hierarchical", "width": 32, "patch": 4, "clusters": []},
        rule={"name": "provable"},
        optim={"name": "sgd", "lr": 0.1, "momentum": 0.9, "schedule": "constant"},
        train={"epochs": 4},
    )
    summary = LocalEngine(build_experiment(config)).train()
    assert summary["accuracy"] >= 0.98


def test_a_two_level_instance_is_learned_layer_by_layer() -> None:
    config = tiny_config(**{**LAYERWISE, "train": {"epochs": 3}})
    engine = LocalEngine(build_experiment(config))
    summary = engine.train()
    assert summary["accuracy"] >= 0.95
    assert summary["eval"]["1/accuracy"] == summary["accuracy"]


def test_rejects_stacks_without_clustering_layers() -> None:
    with pytest.raises(ValueError, match=r"model\.arch=hierarchical"):
        build_experiment(tiny_config(rule={"name": "provable"}))
    quantize_off = HierarchicalConfig(quantize=False, clusters=(4,), patch=2, width=4)
    with pytest.raises(ValueError, match="quantize=true"):
        Provable(Provable.Config()).prepare(quantize_off.build((1, 8, 8), 3))


def test_top_global_reads_the_whole_remaining_grid() -> None:
    stack = HierarchicalConfig(width=4, patch=4, clusters=(6,), top_global=True).build(
        (1, 28, 28), 10
    )
    assert stack.output_shapes == [(6, 7, 7), (10,)]
    top = stack.blocks[1]
    assert isinstance(top, PatchLayer) and top.conv.kernel_size == (7, 7)
    assert stack(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_cluster_epochs_must_be_positive() -> None:
    assert Provable.Config(cluster_epochs=0).problems()[0][0] == "cluster_epochs"
    assert Provable.Config().problems() == []
