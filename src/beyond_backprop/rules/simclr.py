"""SimCLR: NT-Xent between two augmented views, end to end or per block."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from torch import nn

from beyond_backprop.data.views import ViewsConfig
from beyond_backprop.models.probes import probed_locals
from beyond_backprop.models.projection import ProjectionHead
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import BlockContext, LocalLoss, Objective, OutputGradient, Wiring
from beyond_backprop.rules.contrastive import TwoViewContrastive, contrastive_terms
from beyond_backprop.rules.registry import register_rule
from beyond_backprop.rules.self_supervised import encoder_blocks


@register_rule("simclr", "SimCLR: NT-Xent on two augmented views, end to end or per block")
class SimCLR(TwoViewContrastive):
    """SimCLR (Chen, Kornblith, Norouzi, Hinton 2020, arXiv 2002.05709, Sec. 2.1 and Alg. 1).

    Each batch becomes two augmented views stacked along the batch dimension (``data.views``);
    a nonlinear projection head on the encoder's output gives ``z``, and NT-Xent pulls the two
    views of an image together against the other ``2N - 2`` views. The encoder is every block
    below the stack's classifier block; the classifier block is not trained (it does not run),
    and each encoder block has an online linear probe on its detached output, which is what
    evaluation scores (the top block's probe is the network's prediction).

    ``mode: end_to_end`` puts the head on the top encoder block and sends the true gradient
    down (as back-propagation); ``per_block`` gives every block its own head and loss on a
    detached input (purely local, wiring ``none``; equal to ``loco`` with ``overlap: false``,
    tested).

    ``head_depth: 3`` gives SimCLRv2's deeper head (Chen, Kornblith, Swersky, Norouzi, Hinton
    2020, arXiv 2006.10029, Sec. 2); only the rule's local modules change, so it trains on
    either engine as the v1 head does. Fine-tuning from the head's middle layer and
    self-distillation are evaluations of a finished run (``eval/semi_supervised.py``).

    Deviations: a small MLP head without BatchNorm; SGD/Adam from the shared optimizer section
    instead of LARS with large batches; views tuned for 28x28 digits (no flips, no colour);
    BatchNorm statistics are shared by the two views (SimCLR uses global BN across devices).
    """

    @dataclass(frozen=True)
    class Config:
        """SimCLR's options."""

        mode: Literal["end_to_end", "per_block"] = "end_to_end"
        """``end_to_end``: one head on the top encoder block, the gradient goes all the way
        down; ``per_block``: a head and NT-Xent loss per block, inputs detached."""
        temperature: float = 0.5
        """NT-Xent temperature."""
        head_hidden: int = 128
        """Hidden width of the projection head."""
        head_out: int = 64
        """Output dimension of the projection head."""
        head_depth: int = 2
        """Linear layers in the projection head: 2 is SimCLR's head, 3 SimCLRv2's deeper head
        (arXiv 2006.10029, Sec. 2), fine-tuned from its first layer (``bbp eval --finetune``)."""
        probe_pool: int = 4
        """Probes read image features average-pooled to at most this many cells per side."""
        views: ViewsConfig = field(default_factory=ViewsConfig)
        """The augmentations that make the two views."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            found = [(f"views.{k}", m) for k, m in self.views.problems()]
            if self.temperature <= 0:
                found.append(("temperature", f"{self.temperature} is invalid: must be > 0"))
            for key in ("head_hidden", "head_out", "head_depth", "probe_pool"):
                if getattr(self, key) < 1:
                    found.append((key, f"{getattr(self, key)} is invalid: must be >= 1"))
            return found

    default_wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="gradient")

    @property
    def wiring(self) -> Wiring:
        """End to end the gradient goes down every block; per block nothing crosses a block."""
        if self.config.mode == "per_block":
            return Wiring(forward="activation", backward="none")
        return self.default_wiring

    def build_locals(self, stack: BlockStack) -> list[nn.Module | None]:
        """A probe for every encoder block; projection heads where the mode puts them."""
        cfg = self.config
        encoder = encoder_blocks(stack, "simclr")
        shapes = [stack.output_shapes[k] for k in encoder]
        heads: list[nn.Module | None] = [
            ProjectionHead(shape, cfg.head_hidden, cfg.head_out, depth=cfg.head_depth)
            if cfg.mode == "per_block" or k == encoder[-1]
            else None
            for k, shape in zip(encoder, shapes, strict=True)
        ]
        return probed_locals(shapes, heads, stack.output_shapes[-1][0], cfg.probe_pool, len(stack))

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """NT-Xent where a head is; the gradient from above elsewhere (end to end)."""
        terms = contrastive_terms(ctx.local, ctx.h_out, ctx.batch.y, self.config.temperature)
        if "nt_xent" in terms:
            return LocalLoss(terms)
        return OutputGradient(ctx.inbox["grad"], terms)
