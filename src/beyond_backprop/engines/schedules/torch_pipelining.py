"""PyTorch's own pipeline schedules (``torch.distributed.pipelining``) as back-propagation
baselines: ``pp_gpipe``, ``pp_1f1b``, ``pp_looped_bfs``, ``pp_interleaved_1f1b``,
``pp_zero_bubble`` and ``pp_zbv``.

Each rank wraps its blocks in ``PipelineStage``s (one per stage it holds, a ``nn.Sequential``
slice of the stack), and PyTorch's schedule runs the micro-batches: forwards, backwards (split
into input and weight gradients in the zero-bubble schedules), and every send and receive of
activations and gradients. The loss on the last stage is the rule's own objective of the top
block (``block_objective``: backprop's cross-entropy mean with its ``label_smoothing``, or
fa's), weighted by the micro-batch's share of the batch, so the accumulated gradients are those
of one-process back-propagation of the batch's mean loss (tested). The optimizer step stays the
engine's, after ``run``.

Deviations: as ``gpipe`` (GPipe, arXiv 1811.06965, Sec. 2.2), BatchNorm normalises each
micro-batch with its own statistics. PyTorch's stages have static shapes, so every micro-batch
of a batch must be equally large (``engine.microbatches`` must divide the batch size and the
epoch's last batch), and a schedule is built once per micro-batch size (the last batch of an
epoch may have its own). Only rules whose blocks below the top have no local modules are
served: PyTorch's stages back-propagate the top loss and nothing else. fp16's per-block loss
scales do not fit a single pipeline loss, so ``engine.precision: fp16`` is refused.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.distributed.pipelining import PipelineStage
from torch.distributed.pipelining import schedules as pp

from beyond_backprop.config.schema import ExperimentConfig
from beyond_backprop.data.base import batches_per_epoch
from beyond_backprop.engines.device import block_autocast
from beyond_backprop.engines.schedules.base import Schedule
from beyond_backprop.engines.schedules.registry import register_schedule
from beyond_backprop.engines.stage import Stage, Terms
from beyond_backprop.errors import NonFiniteLossError, WiringError
from beyond_backprop.experiment import Experiment
from beyond_backprop.rules.base import Batch, BlockContext, Wiring


class _Blocks(nn.Module):
    """One pipeline stage's blocks; keeps the top block's input for its objective."""

    def __init__(self, blocks: list[nn.Module], holds_top: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.holds_top = holds_top
        self.top_input: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        for offset, block in enumerate(self.blocks):
            if self.holds_top and offset == len(self.blocks) - 1:
                # the loss is computed right after this forward (every PyTorch schedule
                # computes a micro-batch's loss in the same action as its last forward)
                self.top_input = x
            with block_autocast():
                x = block(x)
        return x


class TorchPipeline(Schedule):
    """A ``torch.distributed.pipelining`` schedule running back-propagation on this rank's
    stages; subclasses name PyTorch's class (``torch_schedule``) and how many stages each rank
    holds."""

    serves_what = "wirings with backward 'gradient' (through torch.distributed.pipelining)"
    torch_schedule: ClassVar[type[Any]]
    microbatched = True

    @classmethod
    def serves(cls, wiring: Wiring) -> bool:
        return wiring.backward == "gradient" and wiring.forward == "activation"

    @classmethod
    def refuses(cls, experiment: Experiment) -> str | None:
        config, name = experiment.config, experiment.config.engine.schedule
        blocks = len(experiment.stack)
        with_locals = [k for k in range(blocks - 1) if experiment.locals[k] is not None]
        if with_locals:
            return (
                f"engine.schedule: {name!r} back-propagates the top block's loss only, but rule "
                f"{config.rule.name!r} gives blocks {with_locals} local modules of their own; "
                "valid for it: gpipe, naive"
            )
        if list(experiment.rule.active_blocks(0, blocks)) != list(range(blocks)):
            return (
                f"engine.schedule: {name!r} trains every block at once, but rule "
                f"{config.rule.name!r} trains some blocks only; valid for it: gpipe, naive"
            )
        wanted = config.engine.stages * cls.stages_per_rank
        if wanted > blocks:
            return (
                f"engine.schedule: {name!r} places {cls.stages_per_rank} stages on each of "
                f"{config.engine.stages} ranks, so it needs at least {wanted} blocks; this "
                f"stack has {blocks}"
            )
        if config.engine.precision == "fp16":
            return (
                f"engine.precision: 'fp16' does not fit {name!r} (one pipeline loss, no "
                "per-block loss scale); valid: fp32, bf16"
            )
        return _microbatch_problem(config, len(experiment.data.train))

    def __init__(self, stage: Stage, config: ExperimentConfig) -> None:
        super().__init__(stage, config)
        ranks = stage.ranks or list(range(len(stage.partition)))
        self.mine = [s for s, r in enumerate(ranks) if r == stage.rank]
        """The pipeline stages this rank holds, in pipeline order."""
        last = len(stage.partition) - 1
        self.modules = {
            s: _Blocks([stage.stack.blocks[k] for k in stage.partition[s]], s == last)
            for s in self.mine
        }
        self.built: dict[int, Any] = {}
        """Micro-batch size -> PyTorch's schedule over this rank's stages (static shapes)."""
        self.current: tuple[Batch, int, int] | None = None
        self.terms: Terms = {}

    def run(self, batch: Batch, step: int, epoch: int) -> Terms:
        n, parts = batch.x.shape[0], self.config.engine.microbatches
        if n % parts:  # refused before any work; the check is here for batches fed by hand
            raise WiringError(f"engine.microbatches: {parts} does not divide the batch of {n}")
        schedule = self.built.get(n // parts) or self._build(n // parts)
        self.current, self.terms = (batch, step, epoch), {}
        last = len(self.stage.partition) - 1
        args = (batch.x,) if 0 in self.mine else ()
        # the target is each row's index in the batch: the loss looks up the micro-batch's
        # targets and extra views there, so any top-block objective of the rule fits
        rows = torch.arange(n, device=batch.x.device) if last in self.mine else None
        schedule.step(*args, target=rows, return_outputs=False)
        return self.terms

    def _build(self, rows: int) -> Any:
        stack, partition = self.stage.stack, self.stage.partition
        device = next(stack.parameters()).device
        stages = []
        for s in self.mine:
            blocks = partition[s]
            # example tensors of the stage's input and output give PyTorch their shapes up
            # front (its static mode): no trial forward and backward that would move
            # BatchNorm statistics or leave gradients behind
            shape_in = (rows, *stack.input_shape_of(blocks.start))
            shape_out = (rows, *stack.output_shapes[blocks.stop - 1])
            stages.append(PipelineStage(
                self.modules[s], s, len(partition), device,
                input_args=torch.empty(shape_in, device=device, requires_grad=s > 0),
                output_args=torch.empty(shape_out, device=device, requires_grad=True),
            ))  # fmt: skip
        held = stages if self.stages_per_rank > 1 else stages[0]
        parts = self.config.engine.microbatches
        try:
            # scale_grads=False: the loss already carries the micro-batch's share
            schedule = self.torch_schedule(held, parts, loss_fn=self._loss, scale_grads=False)
        except ValueError as error:
            raise WiringError(f"engine.microbatches: {parts} is invalid for "
                              f"{self.config.engine.schedule!r}: {error}") from None  # fmt: skip
        self.built[rows] = schedule
        return schedule

    def _loss(self, output: Tensor, rows: Tensor) -> Tensor:
        """The rule's top-block objective on one micro-batch, times its share of the batch."""
        assert self.current is not None
        batch, step, epoch = self.current
        top = len(self.stage.stack) - 1
        micro = Batch(batch.x[rows], batch.y[rows], tuple(v[rows] for v in batch.views))
        module = self.modules[len(self.stage.partition) - 1]
        assert module.top_input is not None
        ctx = BlockContext(top, top + 1, module.top_input, output, micro,
                           self.stage.locals[top], {}, step, epoch)  # fmt: skip
        with block_autocast():
            objective = self.stage.rule.block_objective(top, ctx)
        share = rows.shape[0] / batch.x.shape[0]
        for name, term in objective.terms.items():
            value = float(term.detach())
            if not math.isfinite(value):
                raise NonFiniteLossError(step, top, name, value)
            self.terms[(top, name)] = self.terms.get((top, name), 0.0) + share * value
        return torch.stack(list(objective.terms.values())).sum() * share


def _microbatch_problem(config: ExperimentConfig, train_size: int) -> str | None:
    """Why ``engine.microbatches`` cannot split every batch into equal micro-batches."""
    size, parts = config.data.batch_size, config.engine.microbatches
    count = batches_per_epoch(train_size, size)
    sizes = {min(size, train_size), train_size - (count - 1) * size}
    if all(s % parts == 0 for s in sizes):
        return None
    valid = [m for m in range(1, min(sizes) + 1) if all(s % m == 0 for s in sizes)]
    rows = ", ".join(map(str, sorted(sizes)))
    return (
        f"engine.microbatches: {parts} does not split the batches ({rows} "
        f"rows) into equal micro-batches, as {config.engine.schedule!r} needs; valid: "
        f"{', '.join(map(str, valid))}"
    )


@register_schedule("pp_gpipe", staged=True)
class TorchGPipe(TorchPipeline):
    """PyTorch's ``ScheduleGPipe``: all forwards, then all backwards (arXiv 1811.06965)."""

    torch_schedule = pp.ScheduleGPipe


@register_schedule("pp_1f1b", staged=True)
class Torch1F1B(TorchPipeline):
    """PyTorch's ``Schedule1F1B``: one forward, one backward in the steady state
    (PipeDream-Flush, arXiv 2006.09503); needs at least as many micro-batches as stages."""

    torch_schedule = pp.Schedule1F1B


@register_schedule("pp_looped_bfs", staged=True)
class TorchLoopedBFS(TorchPipeline):
    """PyTorch's ``ScheduleLoopedBFS``: two stages per rank, each stage's micro-batches
    breadth first (arXiv 2211.05953)."""

    torch_schedule = pp.ScheduleLoopedBFS
    stages_per_rank = 2


@register_schedule("pp_interleaved_1f1b", staged=True)
class TorchInterleaved1F1B(TorchPipeline):
    """PyTorch's ``ScheduleInterleaved1F1B``: two stages per rank, stage s on rank s mod K
    (Megatron-LM's interleaved schedule, arXiv 2104.04473, Sec. 2.2)."""

    torch_schedule = pp.ScheduleInterleaved1F1B
    stages_per_rank = 2


@register_schedule("pp_zero_bubble", staged=True)
class TorchZeroBubble(TorchPipeline):
    """PyTorch's ``ScheduleInterleavedZeroBubble`` (ZB1P, arXiv 2401.10241): two stages per
    rank; the backward is split into input and weight gradients, the weight parts fill the
    bubble."""

    torch_schedule = pp.ScheduleInterleavedZeroBubble
    stages_per_rank = 2


@register_schedule("pp_zbv", staged=True)
class TorchZBV(TorchPipeline):
    """PyTorch's ``ScheduleZBVZeroBubble`` (ZB-V, arXiv 2401.10241, Sec. 6): two stages per
    rank in a V (rank r holds stages r and 2K-1-r), split backward."""

    torch_schedule = pp.ScheduleZBVZeroBubble
    stages_per_rank = 2

    @classmethod
    def rank_of(cls, stage: int, world_size: int) -> int:
        return stage if stage < world_size else 2 * world_size - 1 - stage
