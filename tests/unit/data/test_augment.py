"""Supervised augmentation: seeded by (seed, step), crop and flip do what they say, the loaded
splits (evaluation data included) are never augmented, bad values are reported."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from beyond_backprop.config import build_experiment_config
from beyond_backprop.data import load_dataset
from beyond_backprop.data.augment import AugmentConfig, augment_batch, augment_generator, crop
from beyond_backprop.data.config import DataConfig
from beyond_backprop.errors import ConfigError
from tests.fabricate import write_cifar10_tarball

CIFAR = AugmentConfig(crop_padding=4, flip=True)


def images(n: int = 16, channels: int = 3, side: int = 8) -> torch.Tensor:
    return torch.randn(n, channels, side, side, generator=torch.Generator().manual_seed(1))


def test_same_seed_and_step_give_the_same_batch_other_steps_and_seeds_differ() -> None:
    x = images()
    first = augment_batch(x, CIFAR, augment_generator(3, 10))
    assert torch.equal(first, augment_batch(x, CIFAR, augment_generator(3, 10)))
    assert not torch.equal(first, augment_batch(x, CIFAR, augment_generator(3, 11)))
    assert not torch.equal(first, augment_batch(x, CIFAR, augment_generator(4, 10)))


def test_the_global_generator_when_none_is_given() -> None:
    x = images()
    torch.manual_seed(5)
    first = augment_batch(x, CIFAR, None)
    torch.manual_seed(5)
    assert torch.equal(first, augment_batch(x, CIFAR, None))


def test_flip_mirrors_exactly_the_drawn_images_left_right() -> None:
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5).repeat(16, 1, 1, 1)
    out = augment_batch(x, AugmentConfig(flip=True), augment_generator(0, 7))
    drawn = torch.rand(32, generator=augment_generator(0, 7)) < 0.5
    assert 0 < int(drawn.sum()) < 32
    for i in range(32):
        expected = x[i].flip(-1) if drawn[i] else x[i]
        assert torch.equal(out[i], expected), i
    assert torch.equal(out[drawn][0, 0, 0], torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0]))


def test_crop_takes_the_window_of_the_zero_padded_image() -> None:
    x = torch.arange(1, 17, dtype=torch.float32).view(1, 1, 4, 4)  # no zero pixel of its own
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    corner = crop(padded, torch.tensor([0]), torch.tensor([2]), 4, 4)[0, 0]
    assert torch.equal(corner[0], torch.zeros(4))  # the padding row above the image
    assert torch.equal(corner[1:, :3], x[0, 0, :3, 1:])  # shifted up-left by (1 - 0, 2 - 1)
    assert torch.equal(corner[1:, 3], torch.zeros(3))  # the padding column on the right
    centre = crop(padded, torch.tensor([1]), torch.tensor([1]), 4, 4)
    assert torch.equal(centre, x)


def test_random_crops_are_whole_pixel_windows_of_the_padded_image() -> None:
    x = torch.arange(1, 17, dtype=torch.float32).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = augment_batch(x, AugmentConfig(crop_padding=2), augment_generator(1, 0))
    offsets = torch.randint(0, 5, (2, 64), generator=augment_generator(1, 0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(64):
        top, left = int(offsets[0, i]), int(offsets[1, i])
        assert torch.equal(out[i], padded[i, :, top : top + 4, left : left + 4]), i
    assert len({tuple(o) for o in offsets.T.tolist()}) > 10  # many different windows


def test_switched_off_is_the_identity_and_draws_nothing() -> None:
    x = images()
    torch.manual_seed(2)
    assert augment_batch(x, AugmentConfig(), None) is x
    after = torch.rand(3)
    torch.manual_seed(2)
    assert torch.equal(after, torch.rand(3))


def test_flat_inputs_are_refused_with_the_keys_to_change() -> None:
    with pytest.raises(ValueError, match=r"data\.augment needs image batches"):
        augment_batch(torch.randn(4, 64), CIFAR, augment_generator(0, 0))


def test_loaded_splits_are_never_augmented(tmp_path: Path) -> None:
    """Augmentation acts on training batches only; the splits a loader returns (the evaluation
    split above all) are the same with it on or off."""
    tarball, _ = write_cifar10_tarball(tmp_path)
    plain = DataConfig(name="cifar10", root=str(tarball))
    on = load_dataset(dataclasses.replace(plain, augment=CIFAR))
    off = load_dataset(plain)
    assert torch.equal(on.test.x, off.test.x) and torch.equal(on.train.x, off.train.x)


def test_config_key_and_its_problems() -> None:
    cfg = build_experiment_config({"data": {"augment": {"crop_padding": 4, "flip": True}}})
    assert cfg.data.augment == CIFAR and cfg.data.augment.enabled
    assert not build_experiment_config({}).data.augment.enabled  # off by default
    with pytest.raises(ConfigError) as info:
        build_experiment_config({"data": {"augment": {"crop_padding": -1, "flp": True}}})
    assert info.value.problems == [
        "data.augment.flp: unknown key (did you mean 'flip'?); valid: crop_padding, flip",
        "data.augment.crop_padding: -1 is invalid: must be >= 0 (0: off)",
    ]
