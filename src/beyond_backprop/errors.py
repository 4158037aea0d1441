"""Errors the library raises on purpose, each with a message meant for the user."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BeyondBackpropError(Exception):
    """Base class: a problem the user can fix; the CLI prints it in one line and exits 2."""

    exit_code = 2


class UnknownNameError(BeyondBackpropError, KeyError):
    """A name that is not in a registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConfigError(BeyondBackpropError):
    """One or more problems in a configuration; each is one line of the message."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class DataError(BeyondBackpropError):
    """A dataset is missing, corrupted or malformed."""


class CheckpointError(BeyondBackpropError):
    """A checkpoint or run directory cannot be read."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (a full disk, no permission); the previous
    checkpoint stays the latest, so the run can be resumed from it once there is room."""

    exit_code = 4


class WiringError(BeyondBackpropError):
    """An engine or schedule cannot serve a rule's wiring."""


class NonFiniteLossError(BeyondBackpropError):
    """A local loss became NaN or infinite; names the step, block and term."""

    exit_code = 3

    def __init__(self, step: int, block: int, term: str, value: float) -> None:
        self.step, self.block, self.term, self.value = step, block, term, value
        super().__init__(f"non-finite loss at step {step}, block {block}, term {term!r}: {value}")


def close_match(name: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to ``name``, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else an empty string."""
    match = close_match(name, choices)
    return f" (did you mean {match!r}?)" if match else ""
