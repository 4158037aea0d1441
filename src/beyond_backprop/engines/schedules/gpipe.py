"""``gpipe``: micro-batched back-propagation for gradient wirings (``backprop``, ``fa``).

The batch is split into ``engine.microbatches`` micro-batches; all forwards, then all
backwards in reverse order, gradients accumulated, one update. Each micro-batch's loss is
weighted by its share of the batch (unequal micro-batches included), so without BatchNorm the
gradients equal one-process back-propagation of the batch's mean loss (up to float summation
order; tested).

Deviation (GPipe, arXiv 1811.06965, Sec. 2.2, does the same): BatchNorm layers in training mode
normalise each micro-batch with its own mean and variance, so with BatchNorm and more than one
micro-batch the gradients are those of a one-process run that normalises the same
micro-batches separately ("ghost" BatchNorm of micro-batch size), not those of whole-batch
BatchNorm (tested: they differ), and the running statistics move once per micro-batch.
Whole-batch statistics are not offered: they would need every micro-batch's forward before any
layer's normalisation, which is exactly the pipelining this schedule exists for.
"""

from __future__ import annotations

import torch

from beyond_backprop.engines.schedules.base import Schedule
from beyond_backprop.engines.schedules.registry import register_schedule
from beyond_backprop.engines.stage import Terms
from beyond_backprop.rules.base import Batch, Wiring


@register_schedule("gpipe", staged=True)
class GPipe(Schedule):
    """Micro-batches: all forwards, then all backwards in reverse, one accumulated update."""

    serves_what = "wirings with backward 'gradient'"
    microbatched = True
    """It splits each batch into ``engine.microbatches`` (reports name its bubble)."""

    @classmethod
    def serves(cls, wiring: Wiring) -> bool:
        return wiring.backward == "gradient"

    def run(self, batch: Batch, step: int, epoch: int) -> Terms:
        stage = self.stage
        if not stage.runs:
            return {}
        n = batch.x.shape[0]
        parts = min(self.config.engine.microbatches, n)
        xs, ys = torch.tensor_split(batch.x, parts), torch.tensor_split(batch.y, parts)
        # a rule's extra views (e.g. the targets of a reconstruction rule) are split like x
        views = [torch.tensor_split(v, parts) for v in batch.views]
        micro = [Batch(xs[m], ys[m], tuple(v[m] for v in views)) for m in range(parts)]
        saved = [stage.forward(m.x, m) for m in micro]
        terms: Terms = {}
        for m in reversed(range(parts)):
            needs_inbox = stage.learns and not stage.top
            inbox = stage.channel.recv_named(stage.rank + 1) if needs_inbox else {}
            share = micro[m].x.shape[0] / n
            part_terms, down = stage.backward(saved[m], micro[m], step, epoch, inbox, scale=share)
            saved[m] = []  # free this micro-batch's graph as soon as it is done
            for key, value in part_terms.items():
                terms[key] = terms.get(key, 0.0) + share * value
            if stage.below_learns:
                stage.channel.send_named(down, stage.rank - 1)
        return terms
