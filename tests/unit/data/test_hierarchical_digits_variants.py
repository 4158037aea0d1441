"""The hierarchical-digits generator uses every variant of a symbol and its noise level."""

from __future__ import annotations

import torch

from beyond_backprop.data.hierarchical_digits import HierarchyConfig, generate, make_grammar


def test_every_variant_of_the_top_symbols_is_drawn() -> None:
    config = HierarchyConfig(
        levels=2, patch=2, symbols=(5,), variants=3, noise=0.0, n_train=60, n_test=4
    )
    top, base = make_grammar(config).tables
    base_patches = {tuple(p.flatten().tolist()): s for s, ps in enumerate(base) for p in ps}
    train, _ = generate(config)
    used = set()
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
        used |= {(int(label), v) for v in range(3) if torch.equal(symbols, top[label, v])}
    assert {v for _, v in used} == {0, 1, 2}


def test_pixel_noise_has_the_configured_standard_deviation() -> None:
    for noise in (0.05, 0.3):
        config = HierarchyConfig(levels=1, patch=4, symbols=(), variants=2, noise=noise)
        train, _ = generate(config)
        residual = train.x - train.x.round().clamp(0, 1)
        assert abs(float(residual.std()) - noise) < 0.2 * noise
