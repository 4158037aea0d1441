"""``SteadyClock``: the steady-state training rate, from the loop's own step timings.

A run's whole-loop rate (``samples_per_second``) counts every step, including the first
steps after the start, when allocations and caches are cold, and, in a staged run, the steps
after each evaluation or checkpoint, when the drained pipeline fills again. The steady rate
leaves those steps out, so it is what training runs at between pauses.
"""

from __future__ import annotations

from collections.abc import Sequence

STEADY_WARMUP = 3
"""Steps not counted after the start of a session and after every evaluation or checkpoint;
a staged run of K stages also leaves out the K - 1 steps its pipeline takes to fill."""


class SteadyClock:
    """Sums the time and samples of the steps past a warm-up since the last pause."""

    def __init__(self, stages: int = 1) -> None:
        self.warmup = STEADY_WARMUP + stages - 1
        self.seconds = 0.0
        self.samples = 0
        self.steps = 0
        self._since_pause = 0

    def add(self, seconds: float, samples: int) -> None:
        """One training step's time (the step only) and its number of samples."""
        if self._since_pause >= self.warmup:
            self.seconds += seconds
            self.samples += samples
            self.steps += 1
        self._since_pause += 1

    def pause(self) -> None:
        """Training stopped for an evaluation or a checkpoint: warm up again."""
        self._since_pause = 0

    def rate(self) -> float | None:
        """Samples per second of the counted steps (None when no step was counted)."""
        return self.samples / self.seconds if self.seconds else None

    def state(self) -> list[float]:
        """What a checkpoint keeps (a resumed run's rate covers every session)."""
        return [self.seconds, self.samples, self.steps]

    def load(self, state: Sequence[float] | None) -> None:
        """Restore ``state()``; None (a checkpoint older than this figure) starts from zero."""
        seconds, samples, steps = state if state is not None else (0.0, 0, 0)
        self.seconds, self.samples, self.steps = float(seconds), int(samples), int(steps)
