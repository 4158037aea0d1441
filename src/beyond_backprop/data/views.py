"""Two-view augmentation as batched tensor ops (the SimCLR pipeline, Chen et al. 2020, arXiv
2002.05709, Sec. 3 and Appendix A).

Every random number comes from torch's global generator, which checkpoints save, so a resumed
run draws the same views as an uninterrupted one. Each transform can be switched off on its own
(so the paper's finding that the composition of augmentations matters can be checked by
ablation). Inputs are standardised images ``(B, C, H, W)``: intensity jitter therefore acts in
units of the dataset's standard deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


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
        if not 0 <= self.blur_prob <= 1:
            found.append(("blur_prob", f"{self.blur_prob} is invalid: must be in [0, 1]"))
        if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            found.append(("blur_sigma", f"{self.blur_sigma} is invalid: need 0 < lo <= hi"))
        for key in ("brightness", "contrast", "noise_std"):
            if getattr(self, key) < 0:
                found.append((key, f"{getattr(self, key)} is invalid: must be >= 0"))
        return found


def augment(x: Tensor, cfg: ViewsConfig) -> Tensor:
    """One random view of every image in ``x`` (``(B, C, H, W)``), drawn from torch's global
    generator; the order of draws is fixed, so the same generator state gives the same view."""
    if x.dim() != 4:
        raise ValueError(f"views need image batches (B, C, H, W), got shape {tuple(x.shape)}")
    b = x.shape[0]
    if cfg.crop_scale != (1.0, 1.0):
        x = random_resized_crop(x, cfg.crop_scale, cfg.crop_ratio)
    if cfg.flip:
        flipped = torch.rand(b) < 0.5
        x = torch.where(flipped.view(b, 1, 1, 1), x.flip(3), x)
    if cfg.contrast > 0:
        x = x * _uniform(b, 1 - cfg.contrast, 1 + cfg.contrast).view(b, 1, 1, 1)
    if cfg.brightness > 0:
        x = x + _uniform(b, -cfg.brightness, cfg.brightness).view(b, 1, 1, 1)
    if cfg.blur_prob > 0:
        x = random_blur(x, cfg.blur_prob, cfg.blur_sigma)
    if cfg.noise_std > 0:
        x = x + cfg.noise_std * torch.randn_like(x)
    return x


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
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_blur(x: Tensor, prob: float, sigma: tuple[float, float]) -> Tensor:
    """Blur each image with probability ``prob`` by a separable Gaussian of random width."""
    b, c, height, width = x.shape
    sigmas = _uniform(b, *sigma)
    apply = torch.rand(b) < prob
    radius = max(1, math.ceil(2 * sigma[1]))
    radius = min(radius, (min(height, width) - 1) // 2) or 1
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernels = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * sigmas.view(-1, 1) ** 2))
    kernels = kernels / kernels.sum(dim=1, keepdim=True)  # (B, 2r + 1)
    # one kernel per image: fold the batch into channels and convolve with groups
    weights = kernels.repeat_interleave(c, dim=0)  # (B * C, 2r + 1)
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
