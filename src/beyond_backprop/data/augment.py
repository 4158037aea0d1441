"""Supervised augmentation of training batches as seeded tensor ops: the standard CIFAR recipe
of He et al. (arXiv 1512.03385, Sec. 4.2): "4 pixels are padded on each side, and a 32x32 crop
is randomly sampled from the padded image or its horizontal flip", on per-channel standardised
inputs (``data.normalize``), as the greedy / DGL papers' CIFAR experiments use
(Belilovsky et al., arXiv 1812.11446 and 1901.08164).

Random numbers come from a CPU generator that depends on ``(seed, step)`` only
(``augment_generator``), not from torch's global generator. Every rank of a multi-process run
then draws the same crops and flips for the same step without any message, and a resumed run
draws what an uninterrupted one would without saving generator state; draws elsewhere in the
process (dropout, views, initialisation) cannot shift them. The global generator (as
``views.py`` uses) would have to be identical on every rank at every step, which holds only
as long as every rank draws the same numbers in the same order. Draws are made on the CPU and
moved to the batch's device, so a GPU run augments exactly as a CPU run.

Deviations: He et al. subtract the per-pixel mean; ``data.normalize`` standardises per channel
(mean and std of each colour over the training images), the common modern form. Padding adds
zeros to the standardised batch, i.e. pixels at the training set's
per-channel mean (fb.resnet.torch standardises before padding too; torchvision's
``RandomCrop(padding=4)`` on raw images pads black). The crop offset and flip of every image
are drawn independently, as in the paper; the draw order is fixed (offsets, then flips).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

MAX_CROP_PADDING = 64
"""More padding than this crops mostly padding from any image this library trains on."""

_STREAM = 0x617567  # mixed into the seed so augmentation and masks differ at the same step


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation of training batches (``data.augment``); evaluation data is never
    augmented. Off by default; the CIFAR recipe is ``{crop_padding: 4, flip: true}``."""

    crop_padding: int = 0
    """Pad each side with this many zero pixels, then crop a random window of the original
    size (0: no crop)."""
    flip: bool = False
    """Mirror each image left-right with probability 1/2."""

    @property
    def enabled(self) -> bool:
        """Whether any augmentation is on."""
        return self.crop_padding > 0 or self.flip

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        if self.crop_padding < 0:
            return [("crop_padding", f"{self.crop_padding} is invalid: must be >= 0 (0: off)")]
        if self.crop_padding > MAX_CROP_PADDING:
            return [
                ("crop_padding", f"{self.crop_padding} is invalid: must be <= {MAX_CROP_PADDING}")
            ]
        return []


def augment_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator for the training batch of global step ``step`` (which already
    identifies the epoch) of a run seeded ``seed``. The triple (seed, step, stream) is mixed
    into one 32-bit seed by numpy's ``SeedSequence``."""
    (mixed,) = np.random.SeedSequence([seed, step, _STREAM]).generate_state(1)
    return torch.Generator().manual_seed(int(mixed))


def augment_batch(x: Tensor, config: AugmentConfig, generator: torch.Generator | None) -> Tensor:
    """A randomly cropped and flipped copy of the image batch ``x`` ``(B, C, H, W)``.

    Args:
        x: A training batch (already standardised when ``data.normalize`` is on).
        config: What to apply; ``x`` itself is returned when nothing is enabled (no draws).
        generator: A CPU generator, normally ``augment_generator(seed, step)``; None draws
            from torch's global generator.

    Examples:
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> out = augment_batch(x, AugmentConfig(crop_padding=1), augment_generator(0, 0))
        >>> out.shape
        torch.Size([1, 1, 4, 4])
    """
    if not config.enabled:
        return x
    if x.dim() != 4:
        raise ValueError(
            f"data.augment needs image batches (B, C, H, W), got shape {tuple(x.shape)}; "
            "set data.augment.crop_padding=0 and data.augment.flip=false for flat data"
        )
    b, _, height, width = x.shape
    pad = config.crop_padding
    if pad > 0:
        offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator).to(x.device)
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # zeros: the channel means
        x = crop(padded, offsets[0], offsets[1], height, width)
    if config.flip:
        flipped = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(flipped.view(b, 1, 1, 1), x.flip(3), x)
    return x


def crop(x: Tensor, top: Tensor, left: Tensor, height: int, width: int) -> Tensor:
    """The ``height x width`` window of each image of ``x`` whose corner is at
    (``top[i]``, ``left[i]``), gathered in one indexing op."""
    b, c = x.shape[:2]
    rows = (top.view(b, 1) + torch.arange(height, device=x.device)).view(b, 1, height, 1)
    cols = (left.view(b, 1) + torch.arange(width, device=x.device)).view(b, 1, 1, width)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    channel = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return x[batch, channel, rows, cols]
