"""LoCo: local contrastive learning with overlapping stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from torch import nn

from beyond_backprop.data.views import ViewsConfig
from beyond_backprop.models.probes import probed_locals
from beyond_backprop.models.projection import ProjectionHead
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import BlockContext, LocalLoss, Objective, Wiring
from beyond_backprop.rules.contrastive import TwoViewContrastive, contrastive_terms
from beyond_backprop.rules.registry import register_rule
from beyond_backprop.rules.self_supervised import encoder_blocks


@register_rule("loco", "LoCo: per-block NT-Xent, each loss also trains the block below (overlap)")
class LoCo(TwoViewContrastive):
    """LoCo (Xiong, Ren, Urtasun 2020, arXiv 2008.01342, Sec. 3.2-3.3, Fig. 1).

    Every encoder block k is a local stage with its own projection head and SimCLR NT-Xent
    loss L_k on two augmented views (as ``simclr`` per block). Stages overlap by one block:
    stage k is blocks {k-1, k}, so L_k also trains block k-1, and block k-1 learns from
    L_{k-1} + L_k, while nothing of L_k reaches block k-2 or below. Block k-1 thus acts as a
    shared middle block and block k as a deeper decoder of block k-1's representation, the
    implicit feedback from upper to lower blocks that the paper credits for closing the gap to
    end-to-end SimCLR. ``decoder_depth`` adds conv layers to each head (the paper's deeper
    decoder ablation). The encoder, probes and evaluation are as in ``simclr``.

    How the overlap reaches exactly one block: the engine sends the gradient at block k's
    input to block k-1 as ``inbox["grad"]``; under the ``overlap`` wiring a block answering
    with its own ``LocalLoss`` learns from that gradient too, with its input's gradient zeroed,
    so only dL_k/dx_k goes further down (``engines/step.py``, shared with ``local_parallel``).

    Deviations: stages are single blocks of the library's small CNN (the paper's stages are
    ResNet-50 residual stages, overlapping by one stage); MLP heads without BatchNorm; SGD/Adam
    instead of LARS; the views of ``simclr``.
    """

    @dataclass(frozen=True)
    class Config:
        """LoCo's options."""

        overlap: bool = True
        """Each block's loss also trains the block below it (False: per-block SimCLR)."""
        decoder_depth: int = 0
        """Extra conv layers in each projection head before pooling (the deeper decoder)."""
        temperature: float = 0.5
        """NT-Xent temperature."""
        head_hidden: int = 128
        """Hidden width of the projection heads."""
        head_out: int = 64
        """Output dimension of the projection heads."""
        probe_pool: int = 4
        """Probes read image features average-pooled to at most this many cells per side."""
        views: ViewsConfig = field(default_factory=ViewsConfig)
        """The augmentations that make the two views."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            found = [(f"views.{k}", m) for k, m in self.views.problems()]
            if self.temperature <= 0:
                found.append(("temperature", f"{self.temperature} is invalid: must be > 0"))
            if self.decoder_depth < 0:
                found.append(("decoder_depth", f"{self.decoder_depth} is invalid: must be >= 0"))
            for key in ("head_hidden", "head_out", "probe_pool"):
                if getattr(self, key) < 1:
                    found.append((key, f"{getattr(self, key)} is invalid: must be >= 1"))
            return found

    default_wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="overlap")

    @property
    def wiring(self) -> Wiring:
        """With overlap a gradient goes down one block; without, nothing crosses a block."""
        if not self.config.overlap:
            return Wiring(forward="activation", backward="none")
        return self.default_wiring

    def build_locals(self, stack: BlockStack) -> list[nn.Module | None]:
        """A projection head and a probe for every encoder block."""
        cfg = self.config
        shapes = [stack.output_shapes[k] for k in encoder_blocks(stack, "loco")]
        heads: list[nn.Module | None] = [
            ProjectionHead(shape, cfg.head_hidden, cfg.head_out, cfg.decoder_depth)
            for shape in shapes
        ]
        return probed_locals(shapes, heads, stack.output_shapes[-1][0], cfg.probe_pool, len(stack))

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """L_k, plus (with overlap) the gradient of L_{k+1} sent down by the block above."""
        # with overlap the engine also applies the gradient of L_{k+1} to this block only
        # (wiring ``overlap``): it trains block k but stops at its input
        return LocalLoss(
            contrastive_terms(ctx.local, ctx.h_out, ctx.batch.y, self.config.temperature)
        )
