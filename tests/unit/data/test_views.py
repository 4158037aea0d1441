"""Two-view augmentation: deterministic for a seed, two different views, each op switchable."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from beyond_backprop.data.views import (
    ViewsConfig,
    augment,
    random_blur,
    random_resized_crop,
    stacked_views,
    two_views,
)

OFF = ViewsConfig(crop_scale=(1.0, 1.0), brightness=0.0, contrast=0.0, blur_prob=0.0)


def images(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 1, 12, 12)


def test_views_are_deterministic_for_a_seed() -> None:
    x, cfg = images(), ViewsConfig(flip=True, noise_std=0.1)
    torch.manual_seed(7)
    first = two_views(x, cfg)
    torch.manual_seed(7)
    again = two_views(x, cfg)
    torch.manual_seed(8)
    other = two_views(x, cfg)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])


def test_two_views_of_the_same_image_differ() -> None:
    x = images()
    v1, v2 = two_views(x, ViewsConfig())
    assert v1.shape == v2.shape == x.shape
    for i in range(len(x)):
        assert not torch.allclose(v1[i], v2[i])


def test_stacked_views_put_the_first_views_then_the_second() -> None:
    x = images(4)
    torch.manual_seed(1)
    stacked = stacked_views(x, ViewsConfig())
    torch.manual_seed(1)
    v1, v2 = two_views(x, ViewsConfig())
    assert torch.equal(stacked, torch.cat([v1, v2]))


def test_every_op_switched_off_is_the_identity() -> None:
    x = images()
    assert torch.equal(augment(x, OFF), x)


@pytest.mark.parametrize(
    "change",
    [
        {"crop_scale": (0.3, 0.6)},
        {"flip": True},
        {"brightness": 0.5},
        {"contrast": 0.5},
        {"blur_prob": 1.0},
        {"noise_std": 0.2},
    ],
)
def test_each_op_alone_changes_the_images(change: dict[str, object]) -> None:
    x = images(16)
    assert not torch.equal(augment(x, dataclasses.replace(OFF, **change)), x)


def test_full_crop_with_square_ratio_keeps_the_image() -> None:
    x = images()
    out = random_resized_crop(x, (1.0, 1.0), (1.0, 1.0))
    assert torch.allclose(out, x, atol=1e-5)


def test_blur_keeps_constant_images_and_smooths_noise() -> None:
    flat = torch.full((3, 2, 9, 9), 2.5)
    assert torch.allclose(random_blur(flat, 1.0, (0.5, 1.0)), flat, atol=1e-6)
    noise = torch.randn(3, 1, 16, 16)
    assert random_blur(noise, 1.0, (1.0, 1.0)).std() < noise.std()


def test_views_need_image_batches() -> None:
    with pytest.raises(ValueError, match="image batches"):
        augment(torch.randn(4, 64), ViewsConfig())


def test_config_problems_name_the_bad_fields() -> None:
    bad = ViewsConfig(crop_scale=(0.8, 0.2), blur_prob=2.0, brightness=-1.0)
    assert {field for field, _ in bad.problems()} == {"crop_scale", "blur_prob", "brightness"}
