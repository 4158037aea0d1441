"""What the two-view contrastive rules share (``simclr``, ``loco``): two augmented views of
every image stacked along the batch, and per block the NT-Xent of a projection head plus the
online probe (SimCLR, arXiv 2002.05709, Sec. 2.1)."""

from __future__ import annotations

from torch import Tensor, nn

from beyond_backprop.data.views import stacked_views
from beyond_backprop.losses.nt_xent import nt_xent
from beyond_backprop.models.probes import ProbedLocal
from beyond_backprop.rules.base import Batch
from beyond_backprop.rules.self_supervised import SelfSupervisedRule


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


class TwoViewContrastive(SelfSupervisedRule):
    """Base of the two-view contrastive rules; their ``Config`` has ``views`` (a
    ``ViewsConfig``)."""

    def transform_batch(self, batch: Batch, step: int) -> Batch:
        """Two views of each image, stacked (2B); the targets repeated for the probes."""
        return Batch(stacked_views(batch.x, self.config.views), batch.y.repeat(2))

    def transform_targets(self, batch: Batch, step: int) -> Batch:
        """The targets repeated for the two views; the views, which only block 0 reads, are
        not drawn (the inputs stay as they come)."""
        return Batch(batch.x, batch.y.repeat(2))
