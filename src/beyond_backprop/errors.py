"""Errors the library raises on purpose, each with a message meant for the user, and the exit
codes of ``bbp train``, ``bbp launch`` and ``bbp compare`` (``docs/runs.md``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_OK = 0
"""The run completed, or stopped at ``--stop-after`` with a checkpoint."""
EXIT_BAD_INPUT = 2
"""Bad input: a config value, a missing dataset, an unreadable run directory."""
EXIT_NON_FINITE = 3
"""A local loss became NaN or infinite."""
EXIT_RANK_FAILED = 4
"""A rank of a staged run died, hung past ``engine.timeout_s`` or lost its peers."""
EXIT_SIGNAL_BASE = 128
"""Stopped by signal N (SIGTERM, SIGINT) with a checkpoint: exit ``128 + N``."""


class BeyondBackpropError(Exception):
    """Base class: a problem the user can fix; the CLI prints it in one line and exits 2."""

    exit_code = EXIT_BAD_INPUT


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

    exit_code = EXIT_NON_FINITE

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
