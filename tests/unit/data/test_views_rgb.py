"""SimCLR's colour views for RGB images (arXiv 2002.05709, Appendix A): hue, saturation and
greyscale checked on hand-made cases, the jitter's probability and order, the blur's sigma."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from beyond_backprop.config import build_experiment_config
from beyond_backprop.data.colour import LUMA, adjust_saturation, grayscale, rotate_hue
from beyond_backprop.data.views import ViewsConfig, augment, random_blur

OFF = ViewsConfig(crop_scale=(1.0, 1.0), brightness=0.0, contrast=0.0, blur_prob=0.0)


def rgb(n: int = 8) -> torch.Tensor:
    return torch.randn(n, 3, 6, 6, generator=torch.Generator().manual_seed(3))


def test_hue_turn_by_zero_is_the_identity_and_a_third_turn_cycles_the_channels() -> None:
    x = rgb()
    assert torch.equal(rotate_hue(x, 0.0), x)
    torch.testing.assert_close(rotate_hue(x, 1.0), x, atol=1e-5, rtol=0)
    # 120 degrees about (1, 1, 1) sends red to green, green to blue, blue to red
    torch.testing.assert_close(rotate_hue(x, 1 / 3), x[:, [2, 0, 1]], atol=1e-5, rtol=0)
    grey = x[:, :1].expand(-1, 3, -1, -1)
    torch.testing.assert_close(rotate_hue(grey, torch.rand(8)), grey, atol=1e-5, rtol=0)


def test_saturation_zero_gives_grey_one_keeps_the_image() -> None:
    x = rgb()
    grey = adjust_saturation(x, 0.0)
    luma = sum(w * x[:, c] for c, w in enumerate(LUMA))
    for c in range(3):
        torch.testing.assert_close(grey[:, c], luma)
    torch.testing.assert_close(adjust_saturation(x, 1.0), x)
    torch.testing.assert_close(grayscale(x), grey)


def test_greyscale_with_probability_one_gives_equal_channels() -> None:
    x = rgb()
    out = augment(x, dataclasses.replace(OFF, grayscale_prob=1.0))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert not torch.equal(out, x)


def test_colour_ops_leave_one_channel_images_alone_and_refuse_two_channels() -> None:
    colour = dataclasses.replace(OFF, saturation=0.5, hue=0.2, grayscale_prob=1.0)
    grey = torch.randn(4, 1, 6, 6)
    torch.manual_seed(0)
    assert torch.equal(augment(grey, colour), grey)
    after = torch.rand(2)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(2))  # no draws either: grey views are unchanged
    with pytest.raises(ValueError, match=r"views\.saturation.*got 2 channels"):
        augment(torch.randn(4, 2, 6, 6), colour)


@pytest.mark.parametrize("sigma", [0.5, 1.5])
def test_the_blur_sigma_is_honoured(sigma: float) -> None:
    """An impulse blurs into the separable Gaussian of the drawn sigma, with radius
    ceil(2 * sigma_max), replicate padding and the kernel normalised to sum 1."""
    impulse = torch.zeros(1, 1, 13, 13)
    impulse[0, 0, 6, 6] = 1.0
    radius = math.ceil(2 * sigma)
    k = torch.exp(-(torch.arange(-radius, radius + 1.0) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    expected = torch.zeros(13, 13)
    expected[6 - radius : 7 + radius, 6 - radius : 7 + radius] = torch.outer(k, k)
    out = random_blur(impulse, 1.0, (sigma, sigma))
    torch.testing.assert_close(out[0, 0], expected, atol=1e-6, rtol=0)


def test_jitter_probability_zero_and_one() -> None:
    x = rgb(32)
    jitter = dataclasses.replace(OFF, brightness=0.4, saturation=0.4, hue=0.1)
    assert torch.equal(augment(x, dataclasses.replace(jitter, jitter_prob=0.0)), x)
    half = augment(x, dataclasses.replace(jitter, jitter_prob=0.5))
    kept = [torch.equal(half[i], x[i]) for i in range(32)]
    assert 0 < sum(kept) < 32


def test_random_order_applies_each_image_its_own_permutation() -> None:
    """Contrast then brightness is ``a x + s``; brightness then contrast is ``a (x + s)``:
    with the factors and the order drawn again from the same seed, every image matches the
    composition its order says, and both orders occur."""
    x = torch.ones(64, 1, 2, 2)
    cfg = dataclasses.replace(OFF, contrast=0.5, brightness=0.5, jitter_order="random")
    torch.manual_seed(4)
    out = augment(x, cfg)
    torch.manual_seed(4)
    a = 0.5 + torch.rand(64)  # U(1 - c, 1 + c)
    s = -0.5 + torch.rand(64)  # U(-b, b)
    contrast_first = torch.rand(64, 2).argsort(dim=1)[:, 0] == 0
    expected = torch.where(contrast_first, a + s, a * (1 + s))
    torch.testing.assert_close(out[:, 0, 0, 0], expected)
    assert 0 < int(contrast_first.sum()) < 64


def test_rgb_paper_preset_and_the_config_keys() -> None:
    paper = ViewsConfig.rgb_paper()
    assert paper.problems() == []
    assert (paper.saturation, paper.hue, paper.jitter_prob, paper.grayscale_prob) == (
        0.4,
        0.1,
        0.8,
        0.2,
    )
    assert (paper.crop_scale, paper.flip, paper.blur_prob) == ((0.08, 1.0), True, 0.0)
    assert ViewsConfig.rgb_paper(blur=True).blur_sigma == (0.1, 2.0)
    out = augment(rgb(), paper)
    assert out.shape == (8, 3, 6, 6) and torch.isfinite(out).all()
    views = {"saturation": 0.4, "hue": 0.1, "jitter_prob": 0.8, "jitter_order": "random"}
    cfg = build_experiment_config({"rule": {"name": "simclr", "views": views}})
    assert cfg.rule.options.views.jitter_order == "random"
    bad = ViewsConfig(hue=0.7, saturation=-1.0, jitter_prob=1.5, grayscale_prob=-0.1)
    assert {field for field, _ in bad.problems()} == {
        "hue",
        "saturation",
        "jitter_prob",
        "grayscale_prob",
    }


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_batch_gets_the_cpu_batch_augmentation() -> None:
    """Draws are made on the CPU and moved, so views and ``augment_batch`` match across devices."""
    from beyond_backprop.data.augment import AugmentConfig, augment_batch, augment_generator

    x = rgb(16)
    cfg = ViewsConfig.rgb_paper(blur=True)
    torch.manual_seed(9)
    cpu = augment(x, cfg)
    torch.manual_seed(9)
    gpu = augment(x.cuda(), cfg)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)
    crop = AugmentConfig(crop_padding=4, flip=True)
    on_cpu = augment_batch(x, crop, augment_generator(0, 3))
    assert torch.equal(augment_batch(x.cuda(), crop, augment_generator(0, 3)).cpu(), on_cpu)
