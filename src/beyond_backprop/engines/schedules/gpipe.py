"""``gpipe``: micro-batched back-propagation for gradient wirings (``backprop``, ``fa``).

The batch is split into ``engine.microbatches`` micro-batches; all forwards, then all
backwards in reverse order, gradients accumulated, one update. Each micro-batch's loss is
weighted by its share of the batch (unequal micro-batches included), so without BatchNorm the
gradients equal one-process back-propagation of the batch's mean loss (up to float summation
order; tested).

Deviation (GPipe, arXiv 1811.06965, Sec. 2.2, does the same) under the default
``engine.gpipe_batchnorm: microbatch``: BatchNorm layers in training mode normalise each
micro-batch with its own mean and variance, so with BatchNorm and more than one micro-batch the
gradients are those of a one-process run that normalises the same micro-batches separately
("ghost" BatchNorm of micro-batch size), not those of whole-batch BatchNorm (tested: they
differ), and the running statistics move once per micro-batch.

``engine.gpipe_batchnorm: batch`` gives whole-batch statistics, and with them one process's
gradients and running statistics (tested): a stage holding a BatchNorm layer waits for every
micro-batch's input, runs its blocks once on the whole batch forward and, after every
micro-batch's gradient from above has arrived, once backward; it still sends micro-batches up
and down, so stages without BatchNorm pipeline as before. The cost: a BatchNorm stage overlaps
nothing within the step (the stage above gets its first micro-batch only when the whole batch
is done), so with BatchNorm in every stage a step costs about what a ``naive`` one does.
"""

from __future__ import annotations

import torch
from torch import nn

from beyond_backprop.engines.schedules.base import Schedule
from beyond_backprop.engines.schedules.registry import register_schedule
from beyond_backprop.engines.stage import Messages, Terms
from beyond_backprop.rules.base import Batch, Wiring


@register_schedule("gpipe", staged=True)
class GPipe(Schedule):
    """Micro-batches: all forwards, then all backwards in reverse, one accumulated update."""

    serves_what = "wirings with backward 'gradient'"
    microbatched = True

    @classmethod
    def serves(cls, wiring: Wiring) -> bool:
        return wiring.backward == "gradient"

    def run(self, batch: Batch, step: int, epoch: int) -> Terms:
        stage = self.stage
        if not stage.runs:
            return {}
        n = batch.x.shape[0]
        parts = min(self.config.engine.microbatches, n)
        if self.config.engine.gpipe_batchnorm == "batch" and self._has_batchnorm():
            return self._whole_batch(batch, parts, step, epoch)
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

    def _has_batchnorm(self) -> bool:
        """Whether a block of this stage normalises with batch statistics."""
        blocks = self.stage.stack.blocks[self.stage.blocks.start : self.stage.blocks.stop]
        # _BatchNorm: the base of every BatchNorm1d/2d/3d, lazy and synchronised variant
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in blocks.modules())

    def _whole_batch(self, batch: Batch, parts: int, step: int, epoch: int) -> Terms:
        """This stage on the whole batch at once, micro-batches in and out (the messages the
        stages around expect), so its BatchNorm layers see the whole batch."""
        stage = self.stage
        pairs = stage.forward(batch.x, batch, parts)  # joined in, split out
        inbox: Messages = {}
        if stage.learns and not stage.top:
            # the stage above sends the micro-batches' gradients last one first
            received = [stage.channel.recv_named(stage.rank + 1) for _ in range(parts)][::-1]
            inbox = {key: torch.cat([r[key] for r in received]) for key in received[0]}
        terms, down = stage.backward(pairs, batch, step, epoch, inbox)
        if stage.below_learns:
            pieces = {key: torch.tensor_split(value, parts) for key, value in down.items()}
            for m in reversed(range(parts)):
                stage.channel.send_named({key: p[m] for key, p in pieces.items()}, stage.rank - 1)
        return terms
