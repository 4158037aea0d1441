"""The base of the schedules that apply a signal from another stage ``engine.staleness`` steps
late: ``stale_error`` (DFA's output error) and ``stale_overlap`` (the overlap's one-block
gradient).

The stage that sends the signal sends it in the step it belongs to, without waiting for
anyone. A stage that learns from it keeps, for every step it has run but not learned from
yet, the input of the blocks that learn late (``in_flight``); at step t it receives the
signal of step t - s (sent s steps ago, so with s >= 1 it never waits for a signal of the
current step), re-runs those blocks on the input it kept for step t - s with its current
weights and learns from the signal in step t's optimizer step. The re-run is needed because
the optimizer has updated the weights in place since step t - s, so that step's graph cannot
be back-propagated any more; it is not a new batch, so BatchNorm's running statistics are
restored after it. Checkpoints hold the inputs in flight and the signals already received;
``settle`` receives every signal already sent (the senders sent them at their steps), so the
state saved is that of a step boundary and a resumed run goes on bitwise. Every step, the
top learning block of a stage below the top logs the term ``staleness``: s, also in the
first s steps, when nothing is due yet (so the logged means are s exactly); the top stage,
which learns from the current batch, logs 0.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from beyond_backprop.engines.schedules.base import Schedule
from beyond_backprop.engines.stage import Terms
from beyond_backprop.engines.step import Late
from beyond_backprop.rules.base import Batch


@contextmanager
def kept_statistics(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Re-running blocks on an input they have seen is not a new batch: BatchNorm's running
    statistics are restored on exit (after the backward pass, which may still read them)."""
    buffers = [b for m in modules for b in m.buffers()]
    saved = [b.clone() for b in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(buffers, saved, strict=True):
                buffer.copy_(value)


class StaleSignals(Schedule):
    """Steps in flight whose signal from ``source`` is applied ``engine.staleness`` steps late."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.staleness = self.config.engine.staleness
        self.in_flight: deque[Late] = deque()
        """The steps this stage has run but not learned from yet, oldest first."""
        self.arrived = 0
        """How many of the oldest steps in flight have their signal in ``inbox`` (a signal
        may be empty, so this count, not the inbox, says so)."""

    @property
    def source(self) -> int:
        """The rank that sends this stage its late signal."""
        raise NotImplementedError

    def keep(self, block: int, x_in: torch.Tensor, batch: Batch, step: int, epoch: int) -> None:
        """Keep step ``step``'s input of ``block`` (the lowest block that learns late)."""
        x_in = x_in.detach()
        self.in_flight.append(Late(block, step, epoch, x_in, x_in.new_empty(0), batch.x, batch.y))

    def due(self) -> Late | None:
        """The oldest step in flight with its signal, once it is ``staleness`` steps old
        (None in the first steps of training, before any signal is due)."""
        if len(self.in_flight) <= self.staleness:
            return None
        self._receive(1)
        self.arrived -= 1
        return self.in_flight.popleft()

    def logged(self, terms: Terms, staleness: int) -> Terms:
        """``terms`` with the staleness of the signal that the stage's top learning block
        learned from (the term ``staleness``)."""
        stage = self.stage
        terms[(min(stage.blocks.stop, stage.active.stop) - 1, "staleness")] = float(staleness)
        return terms

    def _receive(self, upto: int) -> None:
        """Receive the signals of the ``upto`` oldest steps in flight (in order: the source
        sent one per step)."""
        while self.arrived < min(upto, len(self.in_flight)):
            self.in_flight[self.arrived].inbox.update(self.stage.channel.recv_named(self.source))
            self.arrived += 1

    def settle(self) -> None:
        # the source has sent the signal of every step in flight: saved with its step
        self._receive(len(self.in_flight))
        super().settle()

    def close(self) -> None:
        self._receive(len(self.in_flight))  # training is over: these are never learned from
        self.in_flight.clear()
        self.arrived = 0
        super().close()

    def state_dict(self) -> dict[str, Any]:
        in_flight = [late.state_dict() for late in self.in_flight]
        return {"in_flight": in_flight, "arrived": self.arrived}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = next(self.stage.stack.parameters()).device  # checkpoints load on the CPU
        self.in_flight = deque(Late.on(device, late) for late in state.get("in_flight", []))
        self.arrived = int(state.get("arrived", 0))
