"""The base of the StageEngine's schedules: what one stage does in one training step.

A schedule is a class that owns its state (pending late updates, an activation inbox, ...),
says which wirings it ``serves``, and is registered under its ``engine.schedule`` name with
``@register_schedule``. Every schedule runs the stage's blocks through ``engines.step`` (the
same code as one process) via its ``Stage``; schedules differ only in which messages they
wait for and when. A new schedule is one new file in this package.
"""

from __future__ import annotations

from typing import Any, ClassVar

from beyond_backprop.config.schema import ExperimentConfig
from beyond_backprop.engines.stage import Stage, Terms
from beyond_backprop.experiment import Experiment
from beyond_backprop.rules.base import Batch, Wiring


class Schedule:
    """One stage's part of each training step.

    Subclasses set ``serves_what`` (for error messages), implement ``serves`` and ``run``, and
    override the hooks where they keep state.
    """

    serves_what: ClassVar[str] = "any wiring"
    """The wirings it serves, in words (error messages name it)."""
    microbatched: ClassVar[bool] = False
    """Whether it splits each batch into ``engine.microbatches`` (reports name its bubble)."""
    stages_per_rank: ClassVar[int] = 1
    """Pipeline stages each rank holds (interleaved schedules: several block ranges, each a
    "virtual" stage, placed by ``rank_of``)."""

    def __init__(self, stage: Stage, config: ExperimentConfig) -> None:
        self.stage = stage
        self.config = config

    @classmethod
    def serves(cls, wiring: Wiring) -> bool:
        """Whether this schedule can train a rule with ``wiring``."""
        return True

    @classmethod
    def rank_of(cls, stage: int, world_size: int) -> int:
        """The rank that holds pipeline stage ``stage`` (default: stage s on rank s mod K)."""
        return stage % world_size

    @classmethod
    def refuses(cls, experiment: Experiment) -> str | None:
        """Why this schedule cannot train ``experiment`` beyond its wiring (an option or a
        rule's modules that do not fit), as one line naming key, value and valid choices;
        None when it can (default)."""
        return None

    def run(self, batch: Batch, step: int, epoch: int) -> Terms:
        """This stage's part of one step, before the optimizers of its blocks step."""
        raise NotImplementedError

    def after_update(self, batch: Batch, step: int, epoch: int) -> None:
        """Called after the stage's optimizers stepped (default: nothing)."""

    def settle(self) -> None:
        """Before an evaluation or a checkpoint: receive what the state waits for and flush
        every send, so parameters and state are those of a step boundary."""
        self.stage.channel.flush()

    def close(self) -> None:
        """End the stage's messaging after the last step."""
        self.stage.channel.flush()

    def state_dict(self) -> dict[str, Any]:
        """The schedule's own state (plain tensors; checkpoints hold it)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved (default: nothing)."""
