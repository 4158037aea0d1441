"""Two-view augmentation as batched tensor ops (the SimCLR pipeline, Chen et al. 2020, arXiv
2002.05709, Sec. 3 and Appendix A).

Every random number comes from torch's global CPU generator, which checkpoints save, so a resumed
run draws the same views as an uninterrupted one (and a GPU batch the same views as a CPU one:
the draws are moved to the batch's device). Each transform can be switched off on its own
(so the paper's finding that the composition of augmentations matters can be checked by
ablation). Inputs are standardised images ``(B, C, H, W)``: intensity jitter therefore acts in
units of the dataset's standard deviation.

The defaults suit grey 28x28 digits (no flips, no colour). ``ViewsConfig.rgb_paper()`` gives the
paper's CIFAR-10 views (Appendix B.9: colour distortion of strength 0.5, no blur): random
resized crop of area 0.08-1 with flips, colour jitter (brightness, contrast, saturation, hue)
applied with probability 0.8 in a random order, random greyscale with probability 0.2.
The colour ops (saturation, hue, greyscale) leave 1-channel images unchanged, as they would a
grey RGB image: a grey image is its own greyscale and has no saturation or hue.

Deviations: brightness is an additive shift and contrast a scale about 0 (the dataset's mean),
both in standard deviations, where torchvision scales raw [0, 1] pixels; hue turns colours
about the grey axis instead of shifting HSV hue (``colour.py``); the blur kernel's radius is
``ceil(2 * sigma_max)`` pixels, not 10% of the image side.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from beyond_backprop.data.colour import adjust_saturation, grayscale, rotate_hue


@dataclass(frozen=True)
class ViewsConfig:
    """Which augmentations make a view, and how strong each is."""

    crop_scale: tuple[float, float] = (0.5, 1.0)
    """Random resized crop: range of the crop's area as a fraction of the image ((1, 1): off)."""
    crop_ratio: tuple[float, float] = (0.75, 1.3333333333333333)
    """Random resized crop: range of the crop's aspect ratio (width / height)."""
    flip: bool = False
    """Random horizontal flip (off for digits, where a mirror image is another symbol)."""
    brightness: float = 0.4
    """Intensity shift drawn from U(-b, b) (standard deviations); 0: off."""
    contrast: float = 0.4
    """Intensity scale drawn from U(1 - c, 1 + c); 0: off."""
    saturation: float = 0.0
    """Saturation factor drawn from U(max(0, 1 - s), 1 + s), blending each image with its
    greyscale (RGB only); 0: off."""
    hue: float = 0.0
    """Hue turn drawn from U(-h, h) of a full circle (RGB only, at most 0.5); 0: off."""
    jitter_prob: float = 1.0
    """Probability that an image gets the colour jitter (brightness, contrast, saturation,
    hue) at all; the paper's 0.8."""
    jitter_order: Literal["fixed", "random"] = "fixed"
    """``fixed``: contrast, brightness, saturation, hue; ``random``: a random order per image
    (as torchvision's ``ColorJitter``)."""
    grayscale_prob: float = 0.0
    """Probability of turning an image grey after the jitter (RGB only); the paper's 0.2."""
    blur_prob: float = 0.5
    """Probability of a Gaussian blur; 0: off."""
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    """Range of the blur's standard deviation (pixels)."""
    noise_std: float = 0.0
    """Standard deviation of additive Gaussian noise; 0: off."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            found.append(("crop_scale", f"{self.crop_scale} is invalid: need 0 < lo <= hi <= 1"))
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            found.append(("crop_ratio", f"{self.crop_ratio} is invalid: need 0 < lo <= hi"))
        for key in ("blur_prob", "jitter_prob", "grayscale_prob"):
            if not 0 <= getattr(self, key) <= 1:
                found.append((key, f"{getattr(self, key)} is invalid: must be in [0, 1]"))
        if not 0 <= self.hue <= 0.5:
            found.append(("hue", f"{self.hue} is invalid: must be in [0, 0.5] (turns)"))
        if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            found.append(("blur_sigma", f"{self.blur_sigma} is invalid: need 0 < lo <= hi"))
        for key in ("brightness", "contrast", "saturation", "noise_std"):
            if getattr(self, key) < 0:
                found.append((key, f"{getattr(self, key)} is invalid: must be >= 0"))
        return found

    @classmethod
    def rgb_paper(cls, strength: float = 0.5, blur: bool = False) -> ViewsConfig:
        """The paper's views for colour images: colour distortion of ``strength`` s
        (brightness, contrast, saturation 0.8 s, hue 0.2 s; Appendix A), crops of area 0.08-1
        with flips; CIFAR-10 uses s = 0.5 and no blur (Appendix B.9), ``blur=True`` adds the
        ImageNet blur (probability 0.5, sigma 0.1-2.0 pixels)."""
        return cls(
            crop_scale=(0.08, 1.0),
            flip=True,
            brightness=0.8 * strength,
            contrast=0.8 * strength,
            saturation=0.8 * strength,
            hue=0.2 * strength,
            jitter_prob=0.8,
            jitter_order="random",
            grayscale_prob=0.2,
            blur_prob=0.5 if blur else 0.0,
            blur_sigma=(0.1, 2.0),
        )


def augment(x: Tensor, cfg: ViewsConfig) -> Tensor:
    """One random view of every image in ``x`` (``(B, C, H, W)``), drawn from torch's global
    generator; the order of draws is fixed, so the same generator state gives the same view."""
    if x.dim() != 4:
        raise ValueError(f"views need image batches (B, C, H, W), got shape {tuple(x.shape)}")
    b = x.shape[0]
    if cfg.crop_scale != (1.0, 1.0):
        x = random_resized_crop(x, cfg.crop_scale, cfg.crop_ratio)
    if cfg.flip:
        flipped = (torch.rand(b) < 0.5).to(x.device)
        x = torch.where(flipped.view(b, 1, 1, 1), x.flip(3), x)
    x = colour_jitter(x, cfg)
    if cfg.grayscale_prob > 0 and _has_colour(x, cfg):
        grey = (torch.rand(b) < cfg.grayscale_prob).to(x.device)
        x = torch.where(grey.view(b, 1, 1, 1), grayscale(x), x)
    if cfg.blur_prob > 0:
        x = random_blur(x, cfg.blur_prob, cfg.blur_sigma)
    if cfg.noise_std > 0:
        x = x + cfg.noise_std * torch.randn(x.shape, dtype=x.dtype).to(x.device)
    return x


def colour_jitter(x: Tensor, cfg: ViewsConfig) -> Tensor:
    """Contrast, brightness, saturation and hue (those switched on), each with one factor per
    image drawn first, applied in ``cfg.jitter_order``, all of it to each image with
    probability ``cfg.jitter_prob``."""
    b = x.shape[0]
    ops: list[Callable[[Tensor], Tensor]] = []
    if cfg.contrast > 0:
        scale = _uniform(b, 1 - cfg.contrast, 1 + cfg.contrast).view(b, 1, 1, 1).to(x)
        ops.append(lambda v: v * scale)
    if cfg.brightness > 0:
        shift = _uniform(b, -cfg.brightness, cfg.brightness).view(b, 1, 1, 1).to(x)
        ops.append(lambda v: v + shift)
    colour = _has_colour(x, cfg)
    if colour and cfg.saturation > 0:
        factor = _uniform(b, max(0.0, 1 - cfg.saturation), 1 + cfg.saturation)
        ops.append(lambda v: adjust_saturation(v, factor))
    if colour and cfg.hue > 0:
        turns = _uniform(b, -cfg.hue, cfg.hue)
        ops.append(lambda v: rotate_hue(v, turns))
    out = x
    if cfg.jitter_order == "random" and len(ops) > 1:
        # order[i, p]: the op image i gets at position p; every op runs on the whole batch and
        # each image keeps the result of its own op (len(ops)**2 cheap batched ops)
        order = torch.rand(b, len(ops)).argsort(dim=1).to(x.device)
        for position in range(len(ops)):
            done = out
            for j, op in enumerate(ops):
                done = torch.where((order[:, position] == j).view(b, 1, 1, 1), op(out), done)
            out = done
    else:
        for op in ops:
            out = op(out)
    if ops and cfg.jitter_prob < 1:
        jittered = (torch.rand(b) < cfg.jitter_prob).to(x.device)
        out = torch.where(jittered.view(b, 1, 1, 1), out, x)
    return out


def _has_colour(x: Tensor, cfg: ViewsConfig) -> bool:
    """Whether the colour ops apply: RGB yes, 1 channel no (they would be identities)."""
    channels = x.shape[1]
    if channels not in (1, 3) and (cfg.saturation > 0 or cfg.hue > 0 or cfg.grayscale_prob > 0):
        raise ValueError(
            f"views.saturation, views.hue and views.grayscale_prob need 1- or 3-channel images, "
            f"got {channels} channels; set them to 0"
        )
    return channels == 3


def two_views(x: Tensor, cfg: ViewsConfig) -> tuple[Tensor, Tensor]:
    """Two independent views of every image (the positive pairs of a contrastive loss)."""
    return augment(x, cfg), augment(x, cfg)


def random_resized_crop(
    x: Tensor, scale: tuple[float, float], ratio: tuple[float, float]
) -> Tensor:
    """Crop a random box of each image (area fraction in ``scale``, aspect ratio in ``ratio``,
    clipped to the image) and resize it back to the full size, as one batched affine resample."""
    b = x.shape[0]
    area = _uniform(b, *scale)
    log_ratio = _uniform(b, math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_ratio)
    # width and height as fractions of the image side; clipping keeps the box inside the image
    w = torch.sqrt(area * aspect).clamp(max=1.0)
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (1 - w) * (2 * torch.rand(b) - 1)  # centre in [-1 + w, 1 - w] (normalised coordinates)
    cy = (1 - h) * (2 * torch.rand(b) - 1)
    theta = torch.zeros(b, 2, 3, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = w, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_blur(x: Tensor, prob: float, sigma: tuple[float, float]) -> Tensor:
    """Blur each image with probability ``prob`` by a separable Gaussian of random width."""
    b, c, height, width = x.shape
    sigmas = _uniform(b, *sigma)
    apply = (torch.rand(b) < prob).to(x.device)
    radius = max(1, math.ceil(2 * sigma[1]))
    radius = min(radius, (min(height, width) - 1) // 2) or 1
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernels = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * sigmas.view(-1, 1) ** 2))
    kernels = kernels / kernels.sum(dim=1, keepdim=True)  # (B, 2r + 1)
    # one kernel per image: fold the batch into channels and convolve with groups
    weights = kernels.repeat_interleave(c, dim=0).to(x.device)  # (B * C, 2r + 1)
    folded = x.reshape(1, b * c, height, width)
    folded = F.pad(folded, (radius, radius, radius, radius), mode="replicate")
    folded = F.conv2d(folded, weights.view(b * c, 1, 1, -1), groups=b * c)
    folded = F.conv2d(folded, weights.view(b * c, 1, -1, 1), groups=b * c)
    blurred = folded.view(b, c, height, width)
    return torch.where(apply.view(b, 1, 1, 1), blurred, x)


def _uniform(n: int, low: float, high: float) -> Tensor:
    return low + (high - low) * torch.rand(n)


def stacked_views(x: Tensor, cfg: ViewsConfig) -> Tensor:
    """Two views of every image stacked along the batch dimension: ``(2B, C, H, W)``, the
    first view of all images, then the second (so ``h.chunk(2)`` splits any block output into
    the two views)."""
    return torch.cat(two_views(x, cfg))
