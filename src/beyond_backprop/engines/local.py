"""The two ways to get a ``Trainer``: every block in this process (``LocalEngine``), or this
rank's stage of a staged run (``StageEngine``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from beyond_backprop.config.engine import EngineConfig
from beyond_backprop.engines.channel import Channel
from beyond_backprop.engines.recorder import Progress, Recorder
from beyond_backprop.engines.schedules import check_experiment_schedule, schedule_class
from beyond_backprop.engines.staged import StagedStep
from beyond_backprop.engines.trainer import Trainer
from beyond_backprop.experiment import Experiment


class LocalEngine(Trainer):
    """Train ``experiment`` with all blocks in this process, under its one-process schedule
    (``naive`` or ``async``). A staged config (``engine.stages > 1``) trains here under the
    default schedule (``naive``): the exact reference its staged schedules are tested against."""

    def __init__(
        self,
        experiment: Experiment,
        recorder: Recorder | None = None,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        engine = experiment.config.engine
        if engine.staged:
            engine = replace(engine, stages=1, schedule=EngineConfig().schedule, boundaries=None)
            experiment = replace(experiment, config=replace(experiment.config, engine=engine))
        check_experiment_schedule(experiment)
        stepper = schedule_class(engine.schedule, staged=False)(experiment)
        super().__init__(experiment, stepper, recorder, progress, should_stop)


class StageEngine(Trainer):
    """Train this rank's stage of ``experiment`` (the process group must be initialised,
    unless ``rank``, ``world_size`` and a ``channel`` are given, as in tests)."""

    stepper: StagedStep

    def __init__(
        self,
        experiment: Experiment,
        boundaries: list[int],
        recorder: Recorder | None = None,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        channel: Channel | None = None,
    ) -> None:
        stepper = StagedStep(experiment, boundaries, rank, world_size, channel)
        super().__init__(experiment, stepper, recorder, progress, should_stop)

    def trace(self) -> None:
        """Record each step's times and every blocked receive."""
        super().trace()
        self.stepper.trace()
