"""Check, before any work, that the configured schedule can train the experiment's rule."""

from __future__ import annotations

from beyond_backprop.engines.schedules.registry import check_schedule, schedule_class
from beyond_backprop.errors import WiringError
from beyond_backprop.experiment import Experiment
from beyond_backprop.rules.registry import default_wirings


def check_experiment_schedule(experiment: Experiment) -> None:
    """Raise ``WiringError`` naming the valid schedules when ``engine.schedule`` cannot serve
    the rule on ``engine.stages`` stages, or when the schedule refuses the experiment's
    options (``Schedule.refuses``)."""
    config = experiment.config
    problem = check_schedule(
        config.engine, config.rule.name, experiment.rule.wiring, default_wirings()
    )
    if not problem and config.engine.staged:
        problem = schedule_class(config.engine.schedule, staged=True).refuses(experiment)
    if problem:
        raise WiringError(problem)
