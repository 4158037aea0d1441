"""Reconstruction-based pretext task: from one half of an image, predict the other half."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from beyond_backprop.data.masks import HalfSide, half_mask, hide
from beyond_backprop.losses.reconstruction import reconstruction_weights
from beyond_backprop.models.probes import ProbedLocal
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import Batch, BlockContext, Objective
from beyond_backprop.rules.reconstruction import (
    Mode,
    ReconstructionHead,
    ReconstructionRule,
    masked_batch,
    reconstruction_locals,
    reconstruction_objective,
    reconstruction_terms,
)
from beyond_backprop.rules.registry import register_rule


@register_rule("pretext", "predict one half of the image from the other (Lee et al. 2020)")
class Pretext(ReconstructionRule):
    """Reconstruction-based self-supervised learning as analysed by Lee, Lei, Saunshi and Zhuo,
    *Predicting What You Already Know Helps: Provable Self-Supervised Learning* (arXiv
    2008.01064, Sec. 3-4: learn psi on X1 to predict X2, psi = argmin E||X2 - psi(X1)||^2, then
    fit a linear predictor of the label Y on psi(X1); Sec. 6: their image experiment hides the
    central face of a portrait, X2, and predicts it from the rest, X1).

    Here X1 is one half of the image (``visible``: top, bottom, left or right) and X2 the other.
    The network sees X1 only: X2 is *masked* (set to 0, the mean pixel of standardised data),
    not cropped, so that every architecture, its classifier block and ``bbp eval --probe`` take
    the input shape they were built for, and a pixel of X1 stays where it is in the image; the
    masked half is a constant and carries nothing about X2 (tested). A decoder on a block's
    output predicts the image and the loss is the squared error on X2's pixels. ``per_block``:
    every encoder block has its own decoder and loss on a detached input (wiring ``none``);
    ``end_to_end``: one decoder on the top encoder block (the paper's psi is the whole
    network). Two representations of X1 can be probed, and are named apart:
    ``block_features`` gives the encoder blocks' outputs phi_k(X1) (what the online probes and
    ``bbp eval --probe`` read; the paper's psi is the regressor, not these), and
    ``named_features`` adds, for every block with a decoder, ``psi_k(X1)``: that regressor's
    prediction of X2 (the decoder's output on X2's pixels), the paper's psi(X1) exactly. Both
    see X1 only, as in the paper, so their accuracy is that of half an image. The paper's own
    check, that a linear predictor on psi(X1) beats one on X1 itself:
    ``examples/pretext_linearity.py``.

    Deviations: the paper's theory needs X1 and X2 approximately independent given Y (and
    latent variables); the two halves of a digit are not, and the check measures how much of
    the claim survives; the encoder is this library's small CNN, the decoder a small
    channel-wise FC + up-sampling decoder, not the paper's ResNet-18 on 128x128 portraits.
    """

    @dataclass(frozen=True)
    class Config:
        """The pretext task's options."""

        mode: Mode = "per_block"
        """``per_block``: a decoder and loss per encoder block, inputs detached;
        ``end_to_end``: one decoder on the top encoder block."""
        visible: HalfSide = "top"
        """The half the network sees (X1); the other half (X2) is predicted."""
        decoder_width: int = 32
        """Hidden channels (feature maps) or units (vectors) of each decoder."""
        decoder_pool: int = 7
        """Decoders pool feature maps to at most this many cells per side first."""
        probe_pool: int = 4
        """Probes read image features average-pooled to at most this many cells per side."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            return [
                (key, f"{getattr(self, key)} is invalid: must be >= 1")
                for key in ("decoder_width", "decoder_pool", "probe_pool")
                if getattr(self, key) < 1
            ]

    def build_locals(self, stack: BlockStack) -> list[nn.Module | None]:
        """A probe for every encoder block; decoders where the mode puts them."""
        cfg = self.config
        return reconstruction_locals(
            stack, "pretext", cfg.mode, cfg.decoder_width, cfg.decoder_pool, cfg.probe_pool
        )

    def hidden(self, x: Tensor) -> Tensor:
        """The mask of X2 ``(H, W)`` for image batches ``x``."""
        if x.dim() != 4:
            raise ValueError(f"pretext needs image batches (B, C, H, W), got {tuple(x.shape)}")
        return half_mask(x.shape[2], x.shape[3], self.config.visible)

    def transform_batch(self, batch: Batch, step: int) -> Batch:
        """X1 only (X2 set to 0); the targets, loss weights and X2's mask go in ``views``."""
        mask = self.hidden(batch.x)
        weights = reconstruction_weights(mask.expand(batch.x.shape[0], -1, -1))
        return masked_batch(batch, mask, weights)

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """The squared error on X2 where a decoder is; the gradient from above elsewhere."""
        return reconstruction_objective(ctx, reconstruction_terms(ctx.local, ctx.h_out, ctx.batch))

    def named_features(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], x: Tensor
    ) -> dict[str, Tensor]:
        """Every representation of X1 to probe, by name: ``phi_<k>`` the encoder block k's
        output, ``psi_<k>`` block k's regressor's prediction of X2 (its decoder's output on
        X2's pixels, ``(B, C * |X2|)``), for every block with a decoder."""
        mask = self.hidden(x)
        out: dict[str, Tensor] = {}
        for k, h in enumerate(self.block_features(stack, x)):
            out[f"phi_{k}"] = h
            local = locals_[k]
            head = local.objective if isinstance(local, ProbedLocal) else None
            if isinstance(head, ReconstructionHead):
                out[f"psi_{k}"] = head.decoder(h)[:, :, mask].flatten(1)
        return out

    def block_features(self, stack: BlockStack, x: Tensor) -> list[Tensor]:
        """phi_k(X1) per encoder block: the encoder's outputs on X1 only."""
        h = hide(x, self.hidden(x))
        features = []
        for block in stack.blocks[:-1]:
            h = block(h)
            features.append(h)
        return features
