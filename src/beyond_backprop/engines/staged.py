"""``StageEngine``: one process per stage, on ``torch.distributed``.

Each rank owns a contiguous range of blocks (a stage), their local modules and optimizers.
Every rank builds the same experiment from the same seed and draws the same batch order, so
only activations and learning signals cross processes (``engines.messages``); what a stage
does in a step is its schedule (``engines.schedules``). The training loop, logging and state
handling are the LocalEngine's, restricted to the stage's own blocks; evaluation gathers the
parameters on rank 0, which scores the whole network; checkpoints are one file per rank,
committed by rank 0's ``latest`` pointer once every rank has written its file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from beyond_backprop.engines.async_stage import ActivationInbox
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.engines.messages import Channel
from beyond_backprop.engines.optim import lr_at
from beyond_backprop.engines.recorder import Progress, Recorder
from beyond_backprop.engines.schedules import SCHEDULES, check_schedule, decoupled
from beyond_backprop.engines.stage import Stage
from beyond_backprop.engines.step import Late
from beyond_backprop.errors import WiringError
from beyond_backprop.experiment import Experiment
from beyond_backprop.rules import default_wirings
from beyond_backprop.rules.base import Batch

log = logging.getLogger(__name__)


class StageEngine(LocalEngine):
    """Train an experiment with this process running stage ``rank`` of ``world_size``.

    Args:
        experiment: the whole experiment (every rank builds all of it; it trains its stage).
        boundaries: the first block of every stage after the first (the same on every rank).
    """

    def __init__(
        self,
        experiment: Experiment,
        boundaries: list[int],
        recorder: Recorder | None = None,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(experiment, recorder, progress, should_stop)
        config = experiment.config.engine
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        problem = check_schedule(
            config.schedule,
            experiment.config.rule.name,
            experiment.rule.wiring,
            default_wirings(),
        )
        if problem:
            raise WiringError(problem)
        self.partition = (
            experiment.stack.partition(boundaries) if boundaries else [range(len(experiment.stack))]
        )
        if len(self.partition) != self.world_size:
            raise WiringError(f"{len(self.partition)} stages for {self.world_size} processes")
        self.owned = self.partition[self.rank]
        self.stage = Stage(
            self.rank, self.world_size, self.owned, experiment.stack, experiment.rule,
            experiment.locals, Channel(self.rank), self.partition, config.microbatches,
        )  # fmt: skip
        self.step_function = SCHEDULES[config.schedule][0]
        if config.schedule == "async" and self.rank > 0:
            self.stage.inbox = ActivationInbox(self.stage, config.replay, experiment.config.seed)
        self.steps_traced: list[tuple[int, float, float]] | None = None
        """When a list (``trace()``), every step as (step, start, end) perf_counter times."""

    def trace(self) -> None:
        """Record when each step ran and when the stage waited (for timelines and the
        busy/idle breakdown of ``benchmarks/bench_parallel.py``)."""
        self.steps_traced = []
        self.stage.channel.waits = []

    def train_step(self, batch: Batch, epoch: int) -> dict[tuple[int, str], float]:
        """This stage's part of one step, as its schedule says."""
        started = time.perf_counter()
        active = list(self.exp.rule.active_blocks(epoch, self.num_blocks))
        self.stage.active = range(active[0], active[-1] + 1)
        if list(self.stage.active) != active:
            raise WiringError(f"active blocks must be contiguous, got {active}")
        if self.stage.inbox is not None and len(active) != self.num_blocks:
            raise WiringError("the async schedule needs every block active")
        learning = [k for k in self.owned if k in self.stage.active]
        self._prepare_optimizers(
            self.owned, lr_at(self.step, self.total_steps, self.exp.config.optim)
        )
        batch = self.exp.rule.transform_batch(batch, self.step)  # every rank: RNG in step
        terms = self.step_function(self.stage, batch, self.step, epoch)
        self._step_optimizers(learning)
        if self.step_function is decoupled and self.stage.unlocked:
            self.stage.pass_real_input(batch, self.step, epoch)
        ended = time.perf_counter()
        self.train_seconds += ended - started
        if self.steps_traced is not None:
            self.steps_traced.append((self.step, started, ended))
        self._record_terms(terms, epoch)
        if self.progress is not None:
            self.progress.on_step(self.step + 1, self.total_steps, epoch)
        return terms

    def train(self, stop_after: int | None = None) -> dict[str, Any]:
        """The LocalEngine's loop, then ``close``."""
        summary = super().train(stop_after)
        self.close()
        return summary

    def close(self) -> None:
        """End the stage's messaging: under ``async`` tell the stage above that no more
        activations come and wait for this stage's receiver to finish; flush every send."""
        if self.exp.config.engine.schedule == "async" and self.rank < self.world_size - 1:
            self.stage.channel.send_stop(self.rank + 1)
        self.stage.await_late()  # the last step's target: training is over, nothing learns it
        self.stage.late = self.stage.late_input = None
        self.stage.channel.flush()
        if self.stage.inbox is not None:
            self.stage.inbox.thread.join()

    def _should_stop(self, stop_after: int | None) -> bool:
        """A stop must happen on every rank at the same step: agree on it every
        ``engine.stop_check_every`` steps (a collective, so not every step)."""
        if stop_after is not None and self.step >= stop_after:
            return True
        if self.step % self.exp.config.engine.stop_check_every:
            return False
        flag = torch.tensor([int(self.should_stop is not None and self.should_stop())])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def evaluate(self, epoch: int) -> dict[str, float]:
        """Gather every stage's parameters on rank 0, which evaluates the whole network."""
        self.stage.await_late()  # it is in the channel before any parameter sent for this
        self.stage.channel.flush()
        self.gather_parameters()
        metrics = super().evaluate(epoch) if self.rank == 0 else {}
        # every stage resumes training together, so no stage's wait for rank 0's
        # evaluation is counted as its training time
        dist.barrier()
        return metrics

    def gather_parameters(self) -> None:
        """Copy every stage's block and local-module tensors into rank 0's stack."""
        if self.rank == 0:
            for rank in range(1, self.world_size):
                for tensor in self._owned_tensors(self.partition[rank]):
                    tensor.copy_(self.stage.channel.recv_required(rank))
        else:
            for tensor in self._owned_tensors(self.owned):
                self.stage.channel.send(tensor, 0)
            self.stage.channel.flush()

    def _owned_tensors(self, blocks: range) -> list[torch.Tensor]:
        tensors: list[torch.Tensor] = []
        for k in blocks:
            tensors.extend(self.exp.stack.blocks[k].state_dict().values())
            local = self.exp.locals[k]
            if local is not None:
                tensors.extend(local.state_dict().values())
        return tensors

    def checkpoint(self) -> None:
        """Every rank writes its file, then rank 0 commits the checkpoint (see recorder)."""
        self.stage.await_late()  # a pending late update is saved with the gradient it needs
        self.stage.channel.flush()
        super().checkpoint()

    def state_dict(self) -> dict[str, Any]:
        """The LocalEngine's state plus the ``decoupled`` schedule's pending late update."""
        pending = {"late": self.stage.late, "late_input": self.stage.late_input}
        return {
            **super().state_dict(),
            **{key: late.state_dict() if late else None for key, late in pending.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from ``state_dict``."""
        super().load_state_dict(state)
        late, late_input = state.get("late"), state.get("late_input")
        self.stage.late = Late(**late) if late else None
        self.stage.late_input = Late(**late_input) if late_input else None

    def summary(self) -> dict[str, Any]:
        """The LocalEngine's summary plus the stage layout."""
        summary = super().summary()
        summary.update(
            rank=self.rank,
            world_size=self.world_size,
            stages=[[r.start, r.stop] for r in self.partition],
            schedule=self.exp.config.engine.schedule,
        )
        return summary
