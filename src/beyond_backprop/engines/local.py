"""``LocalEngine``: every block in one process, in order; the exact reference for the
layer-parallel engine."""

from __future__ import annotations

import logging
import resource
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import torch

from beyond_backprop.data import batches_per_epoch, epoch_order, iter_batches
from beyond_backprop.engines.async_sim import AsyncSimulator
from beyond_backprop.engines.evaluate import evaluate
from beyond_backprop.engines.optim import build_optimizer, lr_at
from beyond_backprop.engines.recorder import Progress, Recorder
from beyond_backprop.engines.step import frozen_forward, train_blocks
from beyond_backprop.experiment import Experiment
from beyond_backprop.rules.base import Batch
from beyond_backprop.tracking.rng import capture_rng_state, restore_rng_state

log = logging.getLogger(__name__)


class LocalEngine:
    """Train an experiment with all blocks in this process.

    Each block (with its local module) has its own optimizer; a step runs the active blocks
    forward, then asks the rule for each block's objective from the top down (see
    ``engines.step``), then steps every active block's optimizer. Training is a pure function
    of the config and the step position, so a checkpoint holds everything a bitwise-exact
    resume needs: parameters, optimizer states, the step, RNG states and the pending log sums.
    """

    def __init__(
        self,
        experiment: Experiment,
        recorder: Recorder | None = None,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.exp = experiment
        self.should_stop = should_stop
        self.recorder = recorder
        self.progress = progress
        config = experiment.config
        self.num_blocks = len(experiment.stack)
        self.optimizers = [
            build_optimizer(params, config.optim) if params else None
            for params in map(experiment.block_parameters, range(self.num_blocks))
        ]
        self.simulator = (
            AsyncSimulator(experiment, self.optimizers, config.engine.replay, config.seed)
            if config.engine.mode == "async_sim"
            else None
        )
        self.steps_per_epoch = batches_per_epoch(len(experiment.data.train), config.data.batch_size)
        self.epochs = experiment.rule.total_epochs(config.train.epochs, self.num_blocks)
        total = self.epochs * self.steps_per_epoch
        self.total_steps = min(total, config.train.max_steps or total)
        self.step = 0
        self.train_seconds = 0.0
        self._sums: dict[tuple[int, str], float] = defaultdict(float)
        self._count = 0
        self.last_eval: dict[str, float] = {}

    # -- training --------------------------------------------------------------------------
    def train(self, stop_after: int | None = None) -> dict[str, Any]:
        """Train until the end; returns the summary. Stops early at a step boundary, with a
        checkpoint, at global step ``stop_after`` or when ``should_stop()`` says so (SIGTERM)."""
        config = self.exp.config
        if config.engine.threads is not None:
            torch.set_num_threads(config.engine.threads)
        torch.use_deterministic_algorithms(config.deterministic)
        train = self.exp.data.train
        evaluated_at = -1
        while self.step < self.total_steps:
            epoch, start = divmod(self.step, self.steps_per_epoch)
            order = epoch_order(len(train), config.seed, epoch)
            for x, y in iter_batches(train, config.data.batch_size, order, start):
                self.train_step(Batch(x, y), epoch)
                self.step += 1
                end_of_epoch = self.step % self.steps_per_epoch == 0
                finished = self.step >= self.total_steps
                every_steps = config.train.eval_every_steps
                if (
                    finished
                    or (end_of_epoch and (epoch + 1) % config.train.eval_every == 0)
                    or (every_steps and self.step % every_steps == 0)
                ):
                    self.evaluate(epoch)
                    evaluated_at = self.step
                every = config.train.checkpoint_every
                if end_of_epoch or finished or (every and self.step % every == 0):
                    self.checkpoint()
                if self._should_stop(stop_after) and not finished:
                    self.checkpoint()
                    return self.summary()
                if finished:
                    break
        if evaluated_at != self.step:
            self.evaluate(max(0, (self.step - 1) // self.steps_per_epoch))
        return self.summary()

    def _should_stop(self, stop_after: int | None) -> bool:
        if stop_after is not None and self.step >= stop_after:
            return True
        return self.should_stop is not None and self.should_stop()

    def train_step(self, batch: Batch, epoch: int) -> dict[tuple[int, str], float]:
        """One step: forward the active blocks, each block's objective top-down, update (or,
        in ``async_sim``, one tick of the simulated asynchronous modules)."""
        started = time.perf_counter()
        lr = lr_at(self.step, self.total_steps, self.exp.config.optim)
        if self.simulator is not None:
            terms = self.simulator.tick(batch, epoch, self.step, lr)
        else:
            terms = self._sync_update(batch, epoch, lr)
        self.train_seconds += time.perf_counter() - started
        self._record_terms(terms, epoch)
        if self.progress is not None:
            self.progress.on_step(self.step + 1, self.total_steps, epoch)
        return terms

    def _sync_update(self, batch: Batch, epoch: int, lr: float) -> dict[tuple[int, str], float]:
        exp = self.exp
        active = list(exp.rule.active_blocks(epoch, self.num_blocks))
        first, last = active[0], active[-1]
        if active != list(range(first, last + 1)):
            raise ValueError(f"active blocks must be contiguous, got {active}")
        self._prepare_optimizers(active, lr)
        batch = exp.rule.transform_batch(batch, self.step)
        self._diagnose(batch, epoch)
        x = frozen_forward(exp.stack, batch.x, 0, first)  # the blocks below the active ones
        blocks = list(exp.stack.blocks[first : last + 1])
        result = train_blocks(
            exp.rule, exp.locals, blocks, first, x, self.num_blocks, batch, self.step, epoch
        )
        self._step_optimizers(active)
        return result.terms

    def _prepare_optimizers(self, blocks: Sequence[int], lr: float) -> None:
        """Set this step's learning rate and clear the gradients of ``blocks``."""
        for k in blocks:
            optimizer = self.optimizers[k]
            if optimizer is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)

    def _step_optimizers(self, blocks: Sequence[int]) -> None:
        """Apply the update of ``blocks`` (the StageEngine calls this for its own blocks)."""
        for k in blocks:
            optimizer = self.optimizers[k]
            if optimizer is not None:
                optimizer.step()

    def _diagnose(self, batch: Batch, epoch: int) -> None:
        every = self.exp.config.train.diagnostics_every
        if every is None or self.step % every != 0:
            return
        exp = self.exp
        figures = exp.rule.diagnostics(exp.stack, exp.locals, batch, self.step)
        if self.recorder is not None:
            for (block, name), value in sorted(figures.items(), key=lambda kv: str(kv[0])):
                self.recorder.log(
                    step=self.step, epoch=epoch, block=block, split="diag", name=name, value=value
                )

    def _record_terms(self, terms: dict[tuple[int, str], float], epoch: int) -> None:
        for key, value in terms.items():
            self._sums[key] += value
        self._count += 1
        if (self.step + 1) % self.exp.config.train.log_every == 0 and self.recorder is not None:
            for (block, name), total in sorted(self._sums.items()):
                self.recorder.log(
                    step=self.step + 1,
                    epoch=epoch,
                    block=block,
                    split="train",
                    name=name,
                    value=total / self._count,
                )
            self._sums.clear()
            self._count = 0

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(self, epoch: int) -> dict[str, float]:
        """Accuracy (and loss) on the evaluation split, logged and returned."""
        exp = self.exp
        metrics = evaluate(
            exp.rule, exp.stack, exp.locals, exp.data.test, exp.config.data.eval_batch_size
        )
        split = exp.data.eval_split
        for key, value in metrics.items():
            block, _, name = key.rpartition("/")
            if self.recorder is not None:
                self.recorder.log(
                    step=self.step,
                    epoch=epoch,
                    block=int(block) if block else None,
                    split=split,
                    name=name,
                    value=value,
                )
        self.last_eval = metrics
        if self.progress is not None:
            self.progress.on_eval(self.step, epoch, metrics)
        return metrics

    # -- state -----------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Hand a complete training state to the recorder."""
        if self.recorder is not None:
            self.recorder.save_checkpoint(self.step, self.state_dict())

    def state_dict(self) -> dict[str, Any]:
        """Everything a bitwise-exact resume needs (only weights_only-safe types)."""
        return {
            "step": self.step,
            "train_seconds": self.train_seconds,
            "model": self.exp.stack.state_dict(),
            "locals": self.exp.locals_container.state_dict(),
            "optimizers": [o.state_dict() if o else None for o in self.optimizers],
            "rng": capture_rng_state(),
            "log_sums": [[block, name, value] for (block, name), value in self._sums.items()],
            "log_count": self._count,
            "last_eval": dict(self.last_eval),
            **({"replay": self.simulator.state_dict()} if self.simulator else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from ``state_dict``."""
        self.step = int(state["step"])
        self.train_seconds = float(state["train_seconds"])
        self.exp.stack.load_state_dict(state["model"])
        self.exp.locals_container.load_state_dict(state["locals"])
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            if optimizer is not None:
                optimizer.load_state_dict(saved)
        restore_rng_state(state["rng"])
        self._sums = defaultdict(
            float, {(int(b), str(n)): float(v) for b, n, v in state["log_sums"]}
        )
        self._count = int(state["log_count"])
        self.last_eval = dict(state["last_eval"])
        if self.simulator is not None:
            self.simulator.load_state_dict(state["replay"])

    def summary(self) -> dict[str, Any]:
        """The run's headline figures."""
        samples = self.step * self.exp.config.data.batch_size
        return {
            "completed": self.step >= self.total_steps,
            "steps": self.step,
            "total_steps": self.total_steps,
            "epochs": self.step / self.steps_per_epoch,
            "train_seconds": self.train_seconds,
            "samples_per_second": samples / self.train_seconds if self.train_seconds else 0.0,
            "eval": dict(self.last_eval),
            "accuracy": self.last_eval.get("accuracy"),
            "peak_rss_mb": peak_rss_mb(),
        }


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
