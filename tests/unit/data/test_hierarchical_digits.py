"""The hierarchical generative model of 1803.09522: deterministic, shaped and counted as its
config says, and a patch always determines the symbol above it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from beyond_backprop.data import DATASETS, DataConfig, load_dataset
from beyond_backprop.data.hierarchical_digits import (
    PRESETS,
    HierarchyConfig,
    generate,
    make_grammar,
    save_expansion_figure,
    save_sample_grid,
)

SMALL = HierarchyConfig(levels=2, patch=2, symbols=(6,), variants=2, n_train=120, n_test=30)


def test_generation_is_a_pure_function_of_the_config() -> None:
    train_a, test_a = generate(SMALL)
    train_b, test_b = generate(SMALL)
    assert torch.equal(train_a.x, train_b.x) and torch.equal(train_a.y, train_b.y)
    assert torch.equal(test_a.x, test_b.x) and torch.equal(test_a.y, test_b.y)
    other, _ = generate(HierarchyConfig(**{**SMALL.__dict__, "seed": 1}))
    assert not torch.equal(train_a.x, other.x)


@pytest.mark.parametrize(
    "config",
    [
        SMALL,
        HierarchyConfig(levels=1, patch=3, symbols=(), n_train=50, n_test=20, num_classes=5),
        HierarchyConfig(levels=3, patch=2, symbols=(5, 4), n_train=64, n_test=16, num_classes=4),
    ],
)
def test_shapes_and_class_counts_match_the_config(config: HierarchyConfig) -> None:
    train, test = generate(config)
    side = config.patch**config.levels
    assert train.x.shape == (config.n_train, 1, side, side)
    assert test.x.shape == (config.n_test, 1, side, side)
    for split, n in ((train, config.n_train), (test, config.n_test)):
        counts = torch.bincount(split.y, minlength=config.num_classes)
        assert counts.tolist() == [
            n // config.num_classes + (c < n % config.num_classes)
            for c in range(config.num_classes)
        ]


def test_noiseless_images_are_expansions_of_the_grammar() -> None:
    """With no noise every image is made of base patches, and each s x s block of level-1
    symbols is one of the variants of exactly one level-2 symbol (here: the label)."""
    config = HierarchyConfig(
        levels=2, patch=2, symbols=(5,), variants=3, noise=0.0, n_train=40, n_test=4
    )
    grammar = make_grammar(config)
    top, base = grammar.tables
    assert top.shape == (config.num_classes, 3, 2, 2) and base.shape == (5, 3, 2, 2)
    # distinct patches within a level: a patch names its parent
    assert len({tuple(p.flatten().tolist()) for p in top.view(-1, 2, 2)}) == top.shape[0] * 3
    assert len({tuple(p.flatten().tolist()) for p in base.view(-1, 2, 2)}) == base.shape[0] * 3
    train, _ = generate(config)
    base_patches = {tuple(p.flatten().tolist()): s for s, ps in enumerate(base) for p in ps}
    for image, label in zip(train.x[:, 0], train.y, strict=True):
        symbols = torch.tensor(
            [
                [
                    base_patches[tuple(image[i : i + 2, j : j + 2].flatten().tolist())]
                    for j in (0, 2)
                ]
                for i in (0, 2)
            ]
        )
        assert any(torch.equal(symbols, variant) for variant in top[label])


def test_invalid_configs_are_reported() -> None:
    problems = dict(HierarchyConfig(levels=3, symbols=(4,)).problems())
    assert "symbols" in problems
    problems = dict(HierarchyConfig(levels=1, patch=1, symbols=(), variants=3).problems())
    assert "only 2 exist" in problems["variants"]
    with pytest.raises(ValueError, match="variants"):
        make_grammar(HierarchyConfig(levels=1, patch=1, symbols=(), variants=3))


def test_presets_are_registered_datasets() -> None:
    assert set(PRESETS) <= set(DATASETS.names())
    splits = load_dataset(DataConfig(name="hierarchical_digits_l1", normalize=False))
    config = PRESETS["hierarchical_digits_l1"]
    assert splits.input_shape == (1, config.patch, config.patch)
    assert splits.num_classes == config.num_classes


def test_sample_grid_is_a_png(tmp_path: Path) -> None:
    path = tmp_path / "grid.png"
    save_sample_grid(SMALL, str(path), per_class=3)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    save_expansion_figure(SMALL, str(tmp_path / "levels.png"), examples=2)
    assert (tmp_path / "levels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_levels_expand_each_other() -> None:
    """Each level's grid is the one above expanded: its s x s blocks are patches of the grammar."""
    grammar = make_grammar(SMALL)
    labels = torch.arange(8) % SMALL.num_classes
    level1, images = grammar.sample_levels(labels, torch.Generator().manual_seed(0))
    assert level1.shape == (8, 2, 2) and images.shape == (8, 1, 4, 4)
    for grid, label in zip(level1, labels, strict=True):
        assert any(torch.equal(grid, variant) for variant in grammar.tables[0][label])
