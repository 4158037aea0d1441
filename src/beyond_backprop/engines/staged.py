"""``StagedStep``: this rank's stage of a staged run, on ``torch.distributed``.

Each rank owns a contiguous range of blocks (a stage), their local modules and optimizers;
under a schedule that places several stages on each rank (``Schedule.stages_per_rank``,
interleaved pipelines) it owns several ranges, placed by the schedule's ``rank_of``.
Every rank builds the same experiment from the same seed and draws the same batch order, so
only activations and learning signals cross processes (``engines.channel``); what a stage
does in a step is its schedule (``engines.schedules``). Evaluation gathers the parameters on
rank 0, which scores the whole network; checkpoints are one file per rank, committed by rank
0's ``latest`` pointer once every rank has written its file (``tracking.recorder``).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.distributed as dist

from beyond_backprop.engines.channel import Channel
from beyond_backprop.engines.messages import DistChannel, guarded
from beyond_backprop.engines.protocol import Terms
from beyond_backprop.engines.schedules import check_experiment_schedule, schedule_class
from beyond_backprop.engines.stage import Stage
from beyond_backprop.engines.state import (
    block_optimizers,
    load_parameter_state,
    parameter_state,
)
from beyond_backprop.errors import WiringError
from beyond_backprop.experiment import Experiment
from beyond_backprop.rules.base import Batch

log = logging.getLogger(__name__)


class StagedStep:
    """Stage ``rank`` of ``world_size`` under the configured schedule.

    Args:
        experiment: the whole experiment (every rank builds all of it; it trains its stage).
        boundaries: the first block of every stage after the first (the same on every rank).
        rank, world_size, channel: this rank, the number of stages and the link to the others
            (default: the initialised process group and a ``DistChannel``; tests pass fakes).
    """

    def __init__(
        self,
        experiment: Experiment,
        boundaries: list[int],
        rank: int | None = None,
        world_size: int | None = None,
        channel: Channel | None = None,
    ) -> None:
        self.exp = experiment
        self.rank = dist.get_rank() if rank is None else rank
        self.world_size = dist.get_world_size() if world_size is None else world_size
        check_experiment_schedule(experiment)
        stack = experiment.stack
        name = experiment.config.engine.schedule
        cls = schedule_class(name, staged=True)
        self.partition = self._stages(boundaries, cls.stages_per_rank)
        self.ranks = [cls.rank_of(s, self.world_size) for s in range(len(self.partition))]
        """The rank holding each stage of ``partition`` (stage r on rank r, unless the
        schedule places several stages on each rank)."""
        self.owned = self.blocks_of(self.rank)
        self.num_blocks = len(stack)
        self.optimizers = block_optimizers(experiment)
        first = self.ranks.index(self.rank)
        self.stage = Stage(
            self.rank, self.world_size, self.partition[first], stack, experiment.rule,
            experiment.locals, channel or DistChannel(self.rank, experiment.device),
            self.partition, self.ranks,
        )  # fmt: skip
        self.schedule = cls(self.stage, experiment.config)
        self.figures: dict[tuple[int | None, str], float] = {}

    def _stages(self, boundaries: list[int], per_rank: int) -> list[range]:
        """The pipeline's stages: ``boundaries`` split the stack into them; a schedule with
        several stages per rank given one per rank splits the stack evenly instead."""
        stack, wanted = self.exp.stack, self.world_size * per_rank
        stages = stack.partition(boundaries) if boundaries else [range(len(stack))]
        if per_rank > 1 and len(stages) == self.world_size:
            if wanted > len(stack):
                raise WiringError(
                    f"engine.schedule: {self.exp.config.engine.schedule!r} places {per_rank} "
                    f"stages on each of {self.world_size} ranks, so it needs at least {wanted} "
                    f"blocks; this stack has {len(stack)}"
                )
            stages = stack.partition(wanted)
        if len(stages) != wanted:
            raise WiringError(f"{len(stages)} stages for {self.world_size} processes")
        return stages

    def blocks_of(self, rank: int) -> list[int]:
        """The blocks ``rank`` holds, stage by stage."""
        return [k for s, r in enumerate(self.ranks) if r == rank for k in self.partition[s]]

    def trace(self) -> None:
        """Record every blocked receive (``channel.waits``)."""
        self.stage.channel.waits = []

    def step(self, batch: Batch, step: int, epoch: int, lr: float) -> Terms:
        """This stage's part of one step, as its schedule says."""
        active = list(self.exp.rule.active_blocks(epoch, self.num_blocks))
        self.stage.active = range(active[0], active[-1] + 1)
        if list(self.stage.active) != active:
            raise WiringError(f"active blocks must be contiguous, got {active}")
        learning = [k for k in self.owned if k in self.stage.active]
        self.optimizers.prepare(self.owned, lr)
        rule = self.exp.rule  # a stage without block 0 needs the targets, not block 0's inputs
        batch = (rule.transform_batch if 0 in self.owned else rule.transform_targets)(batch, step)
        terms = self.schedule.run(batch, step, epoch)
        self.optimizers.step(learning)
        self.schedule.after_update(batch, step, epoch)
        return terms

    def agree_stop(self, requested: bool, step: int) -> bool:
        """A stop must happen on every rank at the same step: agree on it every
        ``engine.stop_check_every`` steps (a collective, so not every step)."""
        if step % self.exp.config.engine.stop_check_every:
            return False
        flag = torch.tensor([int(requested)], device=self.exp.device)
        guarded("agree on a stop (all_reduce)", lambda: dist.all_reduce(flag, op=dist.ReduceOp.MAX))
        return bool(flag.item())

    def prepare_evaluation(self) -> bool:
        """Gather every stage's parameters on rank 0, which evaluates the whole network."""
        self.schedule.settle()
        self.gather_parameters()
        return self.rank == 0

    def after_evaluation(self) -> None:
        # every stage resumes training together, so no stage's wait for rank 0's
        # evaluation is counted as its training time
        guarded("wait for the evaluation (barrier)", dist.barrier)

    def gather_parameters(self) -> None:
        """Copy every stage's block and local-module tensors into rank 0's stack."""
        channel = self.stage.channel
        if self.rank == 0:
            for rank in range(1, self.world_size):
                for tensor in self._owned_tensors(self.blocks_of(rank)):
                    tensor.copy_(channel.recv_required(rank))
        else:
            for tensor in self._owned_tensors(self.owned):
                channel.send(tensor, 0)
            channel.flush()

    def _owned_tensors(self, blocks: list[int]) -> list[torch.Tensor]:
        tensors: list[torch.Tensor] = []
        for k in blocks:
            tensors.extend(self.exp.stack.blocks[k].state_dict().values())
            local = self.exp.locals[k]
            if local is not None:
                tensors.extend(local.state_dict().values())
        return tensors

    def settle(self) -> None:
        self.schedule.settle()

    def close(self) -> None:
        self.schedule.close()

    def state_dict(self) -> dict[str, Any]:
        """Parameters and optimizers plus the schedule's pending state."""
        return {**parameter_state(self.exp, self.optimizers), **self.schedule.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_parameter_state(self.exp, self.optimizers, state)
        self.schedule.load_state_dict(state)

    def summary(self) -> dict[str, Any]:
        """The stage layout."""
        return {
            "rank": self.rank,
            "world_size": self.world_size,
            "stages": [[r.start, r.stop] for r in self.partition],
            "stage_ranks": self.ranks,
            "schedule": self.exp.config.engine.schedule,
        }
