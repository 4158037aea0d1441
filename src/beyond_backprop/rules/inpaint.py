"""Context Encoders: reconstruct a hidden region of the input from its context, per block or
end to end."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from beyond_backprop.data.masks import MaskConfig, draw_masks, step_generator
from beyond_backprop.losses.reconstruction import reconstruction_weights
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import Batch, BlockContext, Objective
from beyond_backprop.rules.reconstruction import (
    CriticInput,
    Mode,
    ReconstructionRule,
    masked_batch,
    reconstruction_locals,
    reconstruction_objective,
    reconstruction_terms,
)
from beyond_backprop.rules.registry import register_rule


@register_rule("inpaint", "Context Encoders: reconstruct a hidden region from its context")
class ContextEncoder(ReconstructionRule):
    """Context Encoders (Pathak, Krähenbühl, Donahue, Darrell, Efros 2016, arXiv 1604.07379,
    Sec. 3: 3.1 encoder-decoder with a channel-wise fully connected layer, 3.2 the masked L2
    loss and the joint loss with an adversarial term, 3.3 region masks).

    Each step hides a region of every image (``masks``: the central square, or random blocks,
    drawn from a generator seeded with ``(mask_seed, step)``, so every rank and a resumed run
    draw the same masks), fills it with 0 (the mean pixel of the standardised data), and the
    network sees only that. A decoder (``models/decoders.py``) on a block's output predicts
    the image, and the loss is the squared error on the hidden region (Eq. 1; optionally also
    on an ``overlap`` band of context around it weighted ``overlap_weight``, as the authors'
    code does). ``per_block``: every encoder block (every block below the classifier) has its
    own decoder and loss on a detached input: nothing but activations crosses a block (wiring
    ``none``, served by the ``pipelined`` schedule). ``end_to_end``: one decoder on the top
    encoder block, and the gradient goes down through every block (as back-propagation).
    Each encoder block has an online linear probe on its detached output; evaluation and
    ``bbp eval --probe`` read the features of whole (unmasked) images, as a pretrained encoder
    is used downstream.

    The adversarial term (``adversarial_weight``, Eq. 2-3, lambda_adv; the paper's
    lambda_rec / lambda_adv = 0.999 / 0.001) is off by default. The paper motivates it by the
    sharpness of the inpainted pixels: L2 alone averages the plausible completions into a
    blur, and the abstract credits the joint loss with far sharper completions, since it copes
    with several possible outputs; this library is after the features, for which the L2
    objective is the part that needs the context to be understood. Without it
    the objective is one regression per block: local, stable, and one optimizer per block
    (a GAN's min-max game is not). When on, each block has its own critic (``Critic``), trained
    in the same local step on its own term (``adversarial_terms``); as in the authors' code
    it sees only the hidden region by default (``critic_sees: whole`` shows it the pasted
    image).

    Deviations: the encoder is this library's small CNN and the decoder a small channel-wise
    FC + up-sampling decoder per block, not AlexNet's pool5 with five up-convolutions; the
    "random region" masks (PASCAL segmentation shapes) are not implemented (no such data
    here); masks are filled with the mean in every channel; the decoder predicts the whole
    image and the loss reads the hidden region (with the overlap band when asked); one
    optimizer and learning rate for block, decoder and critic (the paper's Adam with a 10x
    larger rate for the generator is not reproduced); the region-only critic reads the
    image-sized tensor with the context zeroed, where the authors crop the central square.
    """

    @dataclass(frozen=True)
    class Config:
        """Context Encoders' options."""

        mode: Mode = "per_block"
        """``per_block``: a decoder and loss per encoder block, inputs detached;
        ``end_to_end``: one decoder on the top encoder block, the gradient goes all the way
        down."""
        masks: MaskConfig = field(default_factory=MaskConfig)
        """Which region is hidden (central square or random blocks)."""
        overlap: int = 0
        """Also predict a band of this many context pixels around the hidden region."""
        overlap_weight: float = 10.0
        """Weight of the overlap band's error (the authors' code uses 10)."""
        adversarial_weight: float = 0.0
        """lambda_adv of the joint loss; 0 turns the adversarial term off (no critic)."""
        critic_width: int = 32
        """Channels of the critic's first convolution (when the adversarial term is on)."""
        critic_sees: CriticInput = "region"
        """What the critic judges: ``region``, the hidden region only (the authors' default
        adversary), or ``whole``, the image with the predicted region pasted into its
        context (their conditional-adversary variant)."""
        decoder_width: int = 32
        """Hidden channels (feature maps) or units (vectors) of each decoder."""
        decoder_pool: int = 7
        """Decoders pool feature maps to at most this many cells per side first."""
        probe_pool: int = 4
        """Probes read image features average-pooled to at most this many cells per side."""
        mask_seed: int = 0
        """Masks of step t come from a generator seeded with (mask_seed, t)."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            found = [(f"masks.{k}", m) for k, m in self.masks.problems()]
            if self.overlap < 0:
                found.append(("overlap", f"{self.overlap} is invalid: must be >= 0"))
            if self.overlap_weight < 0:
                found.append(("overlap_weight", f"{self.overlap_weight} is invalid: must be >= 0"))
            if not 0 <= self.adversarial_weight < 1:
                found.append((
                    "adversarial_weight",
                    f"{self.adversarial_weight} is invalid: must be in [0, 1)",
                ))  # fmt: skip
            if not 0 <= self.mask_seed < 2**32:
                found.append(("mask_seed", f"{self.mask_seed} is invalid: must be in [0, 2**32)"))
            for key in ("critic_width", "decoder_width", "decoder_pool", "probe_pool"):
                if getattr(self, key) < 1:
                    found.append((key, f"{getattr(self, key)} is invalid: must be >= 1"))
            return found

    def build_locals(self, stack: BlockStack) -> list[nn.Module | None]:
        """A probe for every encoder block; decoders (and critics) where the mode puts them."""
        cfg = self.config
        critic = cfg.critic_width if cfg.adversarial_weight > 0 else None
        return reconstruction_locals(
            stack, "inpaint", cfg.mode, cfg.decoder_width, cfg.decoder_pool, cfg.probe_pool, critic
        )

    def transform_batch(self, batch: Batch, step: int) -> Batch:
        """Hide this step's masks; the targets, loss weights and masks go in ``views``."""
        cfg = self.config
        if batch.x.dim() != 4:
            raise ValueError(
                f"inpaint needs image batches (B, C, H, W), got {tuple(batch.x.shape)}"
            )
        b, _, height, width = batch.x.shape
        mask = draw_masks(cfg.masks, b, height, width, step_generator(cfg.mask_seed, step))
        weights = reconstruction_weights(mask, cfg.overlap, cfg.overlap_weight)
        return masked_batch(batch, mask, weights)

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """The masked reconstruction error where a decoder is; the gradient from above
        elsewhere (end to end)."""
        cfg = self.config
        terms = reconstruction_terms(
            ctx.local, ctx.h_out, ctx.batch, cfg.adversarial_weight, cfg.critic_sees
        )
        return reconstruction_objective(ctx, terms)
