"""``Trainer``: the one training loop, for one process and for every stage of a staged run.

It owns the loop: epochs and steps in the seeded batch order, the learning rate of each step
(a pure function of the step), evaluation, checkpoint and stop cadence, the logged loss terms
and the summary. What a step does is the step object's (``engines.protocol.Step``): one
process (``naive``, ``async``) or one stage of a staged schedule. Training is a pure function
of the config and the step position, so a checkpoint holds everything a bitwise-exact resume
needs: the step object's state, the step, RNG states and the pending log sums.
"""

from __future__ import annotations

import logging
import resource
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch

from beyond_backprop.config.fingerprint import config_fingerprint
from beyond_backprop.data import (
    augment_batch,
    augment_generator,
    batches_per_epoch,
    epoch_order,
    iter_batches,
)
from beyond_backprop.engines.device import (
    Precision,
    peak_device_memory_mb,
    synchronize,
    to_device,
    training_precision,
)
from beyond_backprop.engines.evaluate import evaluate
from beyond_backprop.engines.optim import lr_at
from beyond_backprop.engines.protocol import Step, Terms
from beyond_backprop.engines.recorder import Progress, Recorder
from beyond_backprop.engines.steady import SteadyClock
from beyond_backprop.errors import CheckpointError
from beyond_backprop.experiment import Experiment
from beyond_backprop.rules.base import Batch
from beyond_backprop.tracking.rng import capture_rng_state, restore_rng_state

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 2
"""The layout of a checkpoint's state; a resume refuses a format it does not know. Format 2
adds the config (``config``: its YAML text, ``config_sha256``) and the samples trained;
formats 0 and 1 have the same layout otherwise."""


class Trainer:
    """Train ``experiment`` by driving ``stepper`` through every step of the run.

    Args:
        experiment: the built experiment.
        stepper: what one step does here (one process, or this rank's stage).
        recorder: receives metrics and checkpoints (None: nothing is written).
        progress: told after every step and evaluation (None: silent).
        should_stop: asked every step whether a stop was requested (SIGTERM, Ctrl-C).
    """

    def __init__(
        self,
        experiment: Experiment,
        stepper: Step,
        recorder: Recorder | None = None,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.exp = experiment
        self.stepper = stepper
        self.recorder = recorder
        self.progress = progress
        self.should_stop = should_stop
        config = experiment.config
        self.num_blocks = len(experiment.stack)
        self.steps_per_epoch = batches_per_epoch(len(experiment.data.train), config.data.batch_size)
        self.epochs = experiment.rule.total_epochs(config.train.epochs, self.num_blocks)
        total = self.epochs * self.steps_per_epoch
        self.total_steps = min(total, config.train.max_steps or total)
        phase = experiment.rule.lr_phase_epochs(config.train.epochs, self.num_blocks)
        # the learning-rate schedule spans the run, or restarts every phase the rule names
        self.lr_period = max(1, self.total_steps if phase is None else phase * self.steps_per_epoch)
        self.step = 0
        self.samples = 0
        """Training examples seen so far (the last batch of an epoch may be smaller)."""
        self.train_seconds = 0.0
        self.steady = SteadyClock(config.engine.stages)
        self._sums: dict[tuple[int, str], float] = defaultdict(float)
        self._count = 0
        self.last_eval: dict[str, float] = {}
        self.precision = Precision.of(config.engine, experiment.device)
        self.steps_traced: list[tuple[int, float, float]] | None = None
        """When a list (``trace()``), every step as (step, start, end) perf_counter times."""

    def trace(self) -> None:
        """Record when each step ran (for timelines and busy/idle breakdowns)."""
        self.steps_traced = []

    # -- training --------------------------------------------------------------------------
    def train(self, stop_after: int | None = None) -> dict[str, Any]:
        """Train until the end; returns the summary. Stops early at a step boundary, with a
        checkpoint, at global step ``stop_after`` or when ``should_stop()`` says so (SIGTERM)."""
        config = self.exp.config
        if config.engine.threads is not None:
            torch.set_num_threads(config.engine.threads)
        torch.use_deterministic_algorithms(config.deterministic)
        self._loop(stop_after)
        self.stepper.close()  # not on an error: a peer may be gone, closing would hang
        return self.summary()

    def _loop(self, stop_after: int | None) -> None:
        config = self.exp.config
        train = self.exp.data.train
        evaluated_at = -1
        while self.step < self.total_steps:
            epoch, start = divmod(self.step, self.steps_per_epoch)
            order = epoch_order(len(train), config.seed, epoch)
            for x, y in iter_batches(train, config.data.batch_size, order, start):
                # training batches only; the same on every rank, a function of (seed, step)
                x = augment_batch(x, config.data.augment, augment_generator(config.seed, self.step))
                x, y = to_device(x, self.exp.device), to_device(y, self.exp.device)
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
                    return
                if finished:
                    break
        if evaluated_at != self.step:
            self.evaluate(max(0, (self.step - 1) // self.steps_per_epoch))

    def _should_stop(self, stop_after: int | None) -> bool:
        if stop_after is not None and self.step >= stop_after:
            return True
        requested = self.should_stop is not None and self.should_stop()
        return self.stepper.agree_stop(requested, self.step)

    def train_step(self, batch: Batch, epoch: int) -> Terms:
        """One step of the step object, timed, its terms recorded."""
        started = time.perf_counter()
        lr = lr_at(self.step % self.lr_period, self.lr_period, self.exp.config.optim)
        with training_precision(self.precision, self.stepper.optimizers.scale):
            terms = self.stepper.step(batch, self.step, epoch, lr)
        synchronize(self.exp.device)  # the step's kernels are done before the clock is read
        ended = time.perf_counter()
        self.train_seconds += ended - started
        self.samples += len(batch.y)
        self.steady.add(ended - started, len(batch.y))
        if self.steps_traced is not None:
            self.steps_traced.append((self.step, started, ended))
        self._record_figures(epoch)
        self._record_terms(terms, epoch)
        if self.progress is not None:
            self.progress.on_step(self.step + 1, self.total_steps, epoch)
        return terms

    def _record_figures(self, epoch: int) -> None:
        if self.recorder is None:
            return
        for (block, name), value in sorted(self.stepper.figures.items(), key=lambda kv: str(kv[0])):
            self.recorder.log(
                step=self.step, epoch=epoch, block=block, split="diag", name=name, value=value
            )

    def _record_terms(self, terms: Terms, epoch: int) -> None:
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
        """Accuracy (and loss) on the evaluation split, logged and returned (empty in the
        processes of a staged run that do not evaluate)."""
        metrics: dict[str, float] = {}
        self.steady.pause()
        if self.stepper.prepare_evaluation():
            metrics = self._evaluate_here(epoch)
        self.stepper.after_evaluation()
        return metrics

    def _evaluate_here(self, epoch: int) -> dict[str, float]:
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
        self.steady.pause()
        self.stepper.settle()
        if self.recorder is not None:
            self.recorder.save_checkpoint(self.step, self.state_dict())

    def state_dict(self) -> dict[str, Any]:
        """Everything a bitwise-exact resume needs (only weights_only-safe types)."""
        return {
            "format": CHECKPOINT_FORMAT,
            **config_fingerprint(self.exp.config),
            "step": self.step,
            "samples": self.samples,
            "train_seconds": self.train_seconds,
            "steady": self.steady.state(),
            **self.stepper.state_dict(),
            "rng": capture_rng_state(),
            "log_sums": [[block, name, value] for (block, name), value in self._sums.items()],
            "log_count": self._count,
            "last_eval": dict(self.last_eval),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from ``state_dict``."""
        found = int(state.get("format", 0))
        if found > CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"the checkpoint has format {found}; this version reads formats up to "
                f"{CHECKPOINT_FORMAT}: resume it with the version that wrote it"
            )
        self.step = int(state["step"])
        # formats before 2 did not count samples: full batches are the best estimate there
        self.samples = int(state.get("samples", self.step * self.exp.config.data.batch_size))
        self.train_seconds = float(state["train_seconds"])
        self.steady.load(state.get("steady"))
        self.stepper.load_state_dict(state)
        restore_rng_state(state["rng"])
        self._sums = defaultdict(
            float, {(int(b), str(n)): float(v) for b, n, v in state["log_sums"]}
        )
        self._count = int(state["log_count"])
        self.last_eval = dict(state["last_eval"])

    def summary(self) -> dict[str, Any]:
        """The run's headline figures."""
        samples = self.samples
        return {
            "completed": self.step >= self.total_steps,
            "steps": self.step,
            "total_steps": self.total_steps,
            "epochs": self.step / self.steps_per_epoch,
            "samples": samples,
            "train_seconds": self.train_seconds,
            "samples_per_second": samples / self.train_seconds if self.train_seconds else 0.0,
            # the steps only, past each warm-up: no start-up, evaluation or checkpoint
            "steady_samples_per_second": self.steady.rate(),
            "steady_steps": self.steady.steps,
            "eval": dict(self.last_eval),
            "accuracy": self.last_eval.get("accuracy"),
            "peak_rss_mb": peak_rss_mb(),
            "device": str(self.exp.device),
            "precision": self.exp.config.engine.precision,
            "peak_device_memory_mb": peak_device_memory_mb(self.exp.device),
            **self.stepper.summary(),
        }


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
