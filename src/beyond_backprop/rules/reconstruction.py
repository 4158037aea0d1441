"""What the reconstruction rules share (``inpaint``, ``pretext``): a region of every image is
hidden, a decoder on a block's output predicts the image, and the loss is the squared error on
the hidden pixels (Context Encoders, arXiv 1604.07379, Sec. 3.2, Eq. 1), per encoder block or
end to end; plus Context Encoders' optional adversarial term (Eq. 2)."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from beyond_backprop.data.masks import hide
from beyond_backprop.losses.reconstruction import masked_l2
from beyond_backprop.models.decoders import Critic, ReconstructionDecoder
from beyond_backprop.models.probes import ProbedLocal, probed_locals
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import (
    Batch,
    BlockContext,
    LocalLoss,
    Objective,
    OutputGradient,
    Wiring,
)
from beyond_backprop.rules.self_supervised import SelfSupervisedRule, encoder_blocks

Mode = Literal["per_block", "end_to_end"]
CriticInput = Literal["region", "whole"]


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
    local: nn.Module | None,
    h_out: Tensor,
    batch: Batch,
    adversarial_weight: float = 0.0,
    critic_sees: CriticInput = "region",
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
        terms.update(adversarial_terms(head.critic, prediction, target, weights, critic_sees))
        terms["adversarial"] = adversarial_weight * terms["adversarial"]
    return terms


def adversarial_terms(
    critic: Critic,
    prediction: Tensor,
    target: Tensor,
    weights: Tensor,
    critic_sees: CriticInput = "region",
) -> dict[str, Tensor]:
    """The GAN terms of Context Encoders (Sec. 3.2, Eq. 2), summed into one local loss:
    ``critic`` trains only the critic (real images vs the predicted ones, detached) and
    ``adversarial`` only the block and decoder (the critic's parameters are detached there), so
    one backward pass and one optimizer step give each side its own gradient.

    ``critic_sees: region`` (the authors' default): the critic judges the hidden region only,
    real or predicted, with the context zeroed; ``whole``: the whole image, with the predicted
    region pasted into its real context (their conditional-adversary variant)."""
    hidden = weights > 0
    predicted = torch.where(hidden, prediction, target)
    if critic_sees == "region":
        zero = torch.zeros((), dtype=target.dtype, device=target.device)
        predicted, target = torch.where(hidden, predicted, zero), torch.where(hidden, target, zero)
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


class ReconstructionRule(SelfSupervisedRule):
    """Base of the reconstruction rules; their ``Config`` has ``mode`` (``Mode``). Per block,
    no message crosses a block (wiring ``none``); end to end, the gradient goes down every
    block (``gradient``)."""

    default_wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="none")

    @property
    def wiring(self) -> Wiring:
        """``none`` per block; ``gradient`` end to end."""
        if self.config.mode == "end_to_end":
            return replace(self.default_wiring, backward="gradient")
        return self.default_wiring
