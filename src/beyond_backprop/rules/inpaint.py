"""Context Encoders: reconstruct a hidden region of the input from its context, per block or
end to end."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from beyond_backprop.data.masks import MaskConfig, draw_masks, hide, step_generator
from beyond_backprop.eval.probe import (
    ProbedLocal,
    encoder_features,
    probe_predictions,
    probed_locals,
)
from beyond_backprop.losses.reconstruction import masked_l2, reconstruction_weights
from beyond_backprop.models.decoders import Critic, ReconstructionDecoder
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import (
    Batch,
    BlockContext,
    LearningRule,
    LocalLoss,
    Objective,
    OutputGradient,
    Wiring,
)
from beyond_backprop.rules.registry import register_rule
from beyond_backprop.rules.simclr import encoder_blocks

Mode = Literal["per_block", "end_to_end"]


class ReconstructionHead(nn.Module):
    """What a block of a reconstruction rule learns through: its decoder, and the critic of
    the adversarial term when there is one."""

    def __init__(self, decoder: ReconstructionDecoder, critic: Critic | None = None) -> None:
        super().__init__()
        self.decoder = decoder
        self.critic = critic


def image_shape(stack: BlockStack, rule: str) -> tuple[int, int, int]:
    """The stack's input shape, which must be an image ``(C, H, W)``."""
    shape = stack.input_shape
    if len(shape) != 3 or min(shape[1:]) < 2:
        raise ValueError(f"{rule} hides image regions: it needs image inputs (C, H, W) of at "
                         f"least 2x2 pixels, got input shape {shape}")  # fmt: skip
    return shape[0], shape[1], shape[2]


def reconstruction_locals(
    stack: BlockStack,
    rule: str,
    mode: Mode,
    width: int,
    pool: int,
    probe_pool: int,
    critic_width: int | None = None,
) -> list[nn.Module | None]:
    """A probe for every encoder block; a decoder (and critic) on every encoder block
    (``per_block``) or on the top one only (``end_to_end``)."""
    image = image_shape(stack, rule)
    encoder = encoder_blocks(stack, rule)
    shapes = [stack.output_shapes[k] for k in encoder]
    heads: list[nn.Module | None] = [
        ReconstructionHead(
            ReconstructionDecoder(shape, image, width, pool),
            Critic(image, critic_width) if critic_width else None,
        )
        if mode == "per_block" or k == encoder[-1]
        else None
        for k, shape in zip(encoder, shapes, strict=True)
    ]
    return probed_locals(shapes, heads, stack.output_shapes[-1][0], probe_pool, len(stack))


def masked_batch(batch: Batch, mask: Tensor, weights: Tensor) -> Batch:
    """The batch the blocks train on: the images with ``mask`` (``(B, H, W)`` or ``(H, W)``)
    hidden; ``views`` carries the whole images (the target), the per-pixel weights of the
    reconstruction error ``(B, 1, H, W)`` and the hidden pixels ``(B, 1, H, W)``."""
    hidden = mask.expand(batch.x.shape[0], *mask.shape[-2:]).unsqueeze(1)
    return Batch(hide(batch.x, mask), batch.y, (batch.x, weights, hidden))


def reconstruction_terms(
    local: nn.Module | None, h_out: Tensor, batch: Batch, adversarial_weight: float = 0.0
) -> dict[str, Tensor]:
    """The terms of a block: its online probe, and where it has a decoder, the masked L2 error
    of the decoder's image (plus, with a critic, the adversarial terms)."""
    if not isinstance(local, ProbedLocal):
        raise TypeError(f"expected the rule's ProbedLocal, got {type(local).__name__}")
    terms = {"probe": local.probe_loss(h_out, batch.y)}
    head = local.objective
    if head is None:
        return terms
    if not isinstance(head, ReconstructionHead):
        raise TypeError(f"expected a ReconstructionHead, got {type(head).__name__}")
    target, weights, _ = batch.views
    prediction = head.decoder(h_out)
    terms["reconstruction"] = masked_l2(prediction, target, weights)
    if head.critic is not None and adversarial_weight > 0:
        terms.update(adversarial_terms(head.critic, prediction, target, weights))
        terms["adversarial"] = adversarial_weight * terms["adversarial"]
    return terms


def adversarial_terms(
    critic: Critic, prediction: Tensor, target: Tensor, weights: Tensor
) -> dict[str, Tensor]:
    """The GAN terms of Context Encoders (Sec. 3.2, Eq. 2), summed into one local loss:
    ``critic`` trains only the critic (real images vs the predicted ones, detached) and
    ``adversarial`` only the block and decoder (the critic's parameters are detached there), so
    one backward pass and one optimizer step give each side its own gradient. The critic
    judges the whole image with the predicted region pasted into its context."""
    predicted = torch.where(weights > 0, prediction, target)
    real = critic(target)
    fake = critic(predicted.detach())
    critic_loss = F.binary_cross_entropy_with_logits(
        real, torch.ones_like(real)
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    frozen = {name: p.detach() for name, p in critic.named_parameters()}
    fooled = functional_call(critic, frozen, (predicted,))
    adversarial = F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
    return {"critic": critic_loss, "adversarial": adversarial}


def reconstruction_objective(ctx: BlockContext, terms: dict[str, Tensor]) -> Objective:
    """A block with a decoder learns from its terms; one without (below the top block, end to
    end) from the gradient sent down, plus its probe."""
    if "reconstruction" in terms:
        return LocalLoss(terms)
    return OutputGradient(ctx.inbox["grad"], terms)


class ReconstructionRule(LearningRule):
    """What the reconstruction rules share: per block, no message crosses a block (wiring
    ``none``); end to end (``config.mode``), the gradient goes down every block; the
    classifier block never runs."""

    wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="none")

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        if config.mode == "end_to_end":
            # an instance-level wiring: end to end, the gradient goes down every block
            self.wiring = replace(type(self).wiring, backward="gradient")  # type: ignore[misc]

    def active_blocks(self, epoch: int, num_blocks: int) -> range:
        """The encoder: the classifier block does not run."""
        return range(num_blocks - 1)


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
    in the same local step on its own term (``adversarial_terms``).

    Deviations: the encoder is this library's small CNN and the decoder a small channel-wise
    FC + up-sampling decoder per block, not AlexNet's pool5 with five up-convolutions; the
    "random region" masks (PASCAL segmentation shapes) are not implemented (no such data
    here); masks are filled with the mean in every channel; the decoder predicts the whole
    image and the loss reads the hidden region (with the overlap band when asked); one
    optimizer and learning rate for block, decoder and critic (the paper's Adam with a 10x
    larger rate for the generator is not reproduced).
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
        terms = reconstruction_terms(
            ctx.local, ctx.h_out, ctx.batch, self.config.adversarial_weight
        )
        return reconstruction_objective(ctx, terms)

    def predictions(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], x: Tensor
    ) -> dict[int | None, Tensor]:
        """Each encoder block's linear probe on whole images (None: the top block's)."""
        return probe_predictions(encoder_features(self, stack, x), locals_)
