"""Region masks for reconstruction pretext tasks: which pixels of an image the network does not
see and must predict.

- ``central_square``: one square in the middle of the image (Context Encoders, Pathak et al.
  2016, arXiv 1604.07379, Sec. 3.3, "central region"; their side is half the image's).
- ``random_blocks``: several smaller squares at random places, possibly overlapping (Sec. 3.3,
  "random block"), so the network cannot learn the boundary of one fixed hole.
- ``half_mask``: one half of the image (top, bottom, left or right) hidden, the other half
  ``X1`` shown (the split into ``X1`` / ``X2`` of Lee et al. 2020, arXiv 2008.01064).

A mask is a bool tensor, True where a pixel is hidden. Random masks come from a generator
seeded with the training step (``step_generator``), not from torch's global generator: every
rank of a staged run, and a resumed run, draws exactly the same masks for the same step,
whatever else its process has drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

HalfSide = Literal["top", "bottom", "left", "right"]


@dataclass(frozen=True)
class MaskConfig:
    """Which region of each image is hidden."""

    kind: Literal["central", "random_blocks"] = "random_blocks"
    """``random_blocks``: ``blocks`` squares at random places; ``central``: one square in the
    middle (a fixed hole, whose boundary the network can learn to latch onto)."""
    central_size: float = 0.5
    """Side of the central square as a fraction of the image's (0.5: a quarter of the area)."""
    block_size: float = 0.25
    """Side of each random block as a fraction of the image's."""
    blocks: int = 4
    """How many random blocks (they may overlap: at most ``blocks * block_size**2`` hidden)."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        for key in ("central_size", "block_size"):
            value = getattr(self, key)
            if not 0 < value < 1:
                found.append((key, f"{value} is invalid: must be in (0, 1)"))
        if self.blocks < 1:
            found.append(("blocks", f"{self.blocks} is invalid: must be >= 1"))
        return found


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator that depends on ``(seed, step)`` only. The pair is mixed into one
    32-bit seed by numpy's ``SeedSequence`` (torch's CPU generator keeps 32 bits of a seed, so
    packing the pair into 64 bits would lose the seed)."""
    (mixed,) = np.random.SeedSequence([seed, step]).generate_state(1)
    return torch.Generator().manual_seed(int(mixed))


def _side(fraction: float, length: int) -> int:
    """A square's side in pixels: ``fraction`` of ``length`` rounded half up, at least 1, at
    most ``length - 1``."""
    return min(max(1, math.floor(fraction * length + 0.5)), length - 1)


def central_square(height: int, width: int, fraction: float) -> Tensor:
    """``(H, W)``: a centred rectangle whose sides are ``fraction`` of the image's."""
    h, w = _side(fraction, height), _side(fraction, width)
    top, left = (height - h) // 2, (width - w) // 2
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[top : top + h, left : left + w] = True
    return mask


def random_blocks(
    batch: int,
    height: int,
    width: int,
    fraction: float,
    count: int,
    generator: torch.Generator,
) -> Tensor:
    """``(B, H, W)``: ``count`` blocks per image, each ``fraction`` of the image's sides,
    placed uniformly inside the image. Draws, in this order: the tops ``(B, count)``, then
    the lefts ``(B, count)``."""
    h, w = _side(fraction, height), _side(fraction, width)
    tops = torch.randint(0, height - h + 1, (batch, count), generator=generator)
    lefts = torch.randint(0, width - w + 1, (batch, count), generator=generator)
    rows = torch.arange(height).view(1, 1, height, 1)
    cols = torch.arange(width).view(1, 1, 1, width)
    inside_rows = (rows >= tops[..., None, None]) & (rows < tops[..., None, None] + h)
    inside_cols = (cols >= lefts[..., None, None]) & (cols < lefts[..., None, None] + w)
    return (inside_rows & inside_cols).any(dim=1)  # (B, count, H, W) -> (B, H, W)


def half_mask(height: int, width: int, visible: HalfSide) -> Tensor:
    """``(H, W)``: every pixel outside the ``visible`` half (for an odd side the visible half
    is the smaller one: floor(side / 2) rows or columns)."""
    mask = torch.ones(height, width, dtype=torch.bool)
    if visible == "top":
        mask[: height // 2] = False
    elif visible == "bottom":
        mask[height - height // 2 :] = False
    elif visible == "left":
        mask[:, : width // 2] = False
    elif visible == "right":
        mask[:, width - width // 2 :] = False
    else:
        raise ValueError(f"visible half {visible!r} is not one of top, bottom, left, right")
    return mask


def draw_masks(
    cfg: MaskConfig, batch: int, height: int, width: int, generator: torch.Generator
) -> Tensor:
    """``(B, H, W)`` masks of ``cfg.kind`` for a batch (the central square is the same for
    every image and draws nothing)."""
    if cfg.kind == "central":
        return central_square(height, width, cfg.central_size).expand(batch, -1, -1)
    return random_blocks(batch, height, width, cfg.block_size, cfg.blocks, generator)


def hide(x: Tensor, mask: Tensor, fill: float = 0.0) -> Tensor:
    """``x`` (``(B, C, H, W)``) with the pixels under ``mask`` (``(B, H, W)`` or ``(H, W)``)
    replaced by ``fill`` in every channel. On standardised inputs 0 is the dataset's mean
    pixel, what Context Encoders fill the hole with: a constant carries no information about
    the hidden pixels, so the network sees only the context."""
    return torch.where(mask.unsqueeze(-3), torch.full_like(x, fill), x)
