"""SimCLR: NT-Xent between two augmented views, end to end or per block."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from torch import Tensor, nn

from beyond_backprop.data.views import ViewsConfig, stacked_views
from beyond_backprop.eval.probe import (
    ProbedLocal,
    encoder_features,
    probe_predictions,
    probed_locals,
)
from beyond_backprop.losses.nt_xent import nt_xent
from beyond_backprop.models.projection import ProjectionHead
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


def encoder_blocks(stack: BlockStack, rule: str) -> range:
    """The encoder of a self-supervised rule: every block below the classifier (last) block."""
    if len(stack) < 2:
        raise ValueError(f"{rule} needs at least one block below the classifier block")
    return range(len(stack) - 1)


def contrastive_terms(
    local: nn.Module | None, h_out: Tensor, y: Tensor, t: float
) -> dict[str, Tensor]:
    """The terms of a block of a two-view contrastive rule: NT-Xent of its projection head on
    the two halves of ``h_out`` (when it has a head), and its online probe on both views."""
    if not isinstance(local, ProbedLocal):
        raise TypeError(f"expected the rule's ProbedLocal, got {type(local).__name__}")
    terms = {"probe": local.probe_loss(h_out, y)}
    if local.objective is not None:
        z1, z2 = local.objective(h_out).chunk(2)
        terms["nt_xent"] = nt_xent(z1, z2, t)
    return terms


@register_rule("simclr", "SimCLR: NT-Xent on two augmented views, end to end or per block")
class SimCLR(LearningRule):
    """SimCLR (Chen, Kornblith, Norouzi, Hinton 2020, arXiv 2002.05709, Sec. 2.1 and Alg. 1).

    Each batch becomes two augmented views stacked along the batch dimension (``data.views``);
    a nonlinear projection head on the encoder's output gives ``z``, and NT-Xent pulls the two
    views of an image together against the other ``2N - 2`` views. The encoder is every block
    below the stack's classifier block; the classifier block is not trained (it does not run),
    and each encoder block has an online linear probe on its detached output, which is what
    evaluation scores (the top block's probe is the network's prediction).

    ``mode: end_to_end`` puts the head on the top encoder block and sends the true gradient
    down (as back-propagation); ``per_block`` gives every block its own head and loss on a
    detached input (purely local; equal to ``loco`` with ``overlap: false``, tested).

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

    wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="gradient")

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

    def transform_batch(self, batch: Batch, step: int) -> Batch:
        """Two views of each image, stacked (2B); the targets repeated for the probes."""
        return Batch(stacked_views(batch.x, self.config.views), batch.y.repeat(2))

    def active_blocks(self, epoch: int, num_blocks: int) -> range:
        """The encoder: the classifier block does not run."""
        return range(num_blocks - 1)

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """NT-Xent where a head is; the gradient from above elsewhere (end to end)."""
        terms = contrastive_terms(ctx.local, ctx.h_out, ctx.batch.y, self.config.temperature)
        if "nt_xent" in terms:
            return LocalLoss(terms)
        return OutputGradient(ctx.inbox["grad"], terms)

    def predictions(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], x: Tensor
    ) -> dict[int | None, Tensor]:
        """Each encoder block's linear probe (None: the top block's)."""
        return probe_predictions(encoder_features(self, stack, x), locals_)
