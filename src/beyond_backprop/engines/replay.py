"""A replay buffer between two modules, as in DGL's asynchronous variant (1901.08164, Sec.
3.2, Algorithm 2): the module below pushes (activation, target) pairs, the module above draws
from the buffer whenever it is ready to step, so neither waits for the other.

A plain seeded data structure: it knows nothing of engines, processes or devices, and all
its randomness comes from the ``torch.Generator`` it is given, so a run that replays the same
pushes and draws with the same generator state gets the same samples.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor


@dataclass(frozen=True)
class ReplayConfig:
    """The replay buffers and the simulated update order of ``engine.mode: async_sim``."""

    size: int = 50
    """Capacity of each buffer (the oldest entry is dropped when a new one arrives)."""
    sampling: Literal["uniform", "newest"] = "uniform"
    """``uniform``: a module draws any stored entry at random (DGL's replay);
    ``newest``: it takes the latest one. Drawing never removes an entry."""
    order: Literal["in_order", "shuffled"] = "shuffled"
    """The order the modules step in within a tick: bottom-up, or a seeded permutation."""
    slow_block: int | None = None
    """A module slowed down (DGL's slow-module experiment); None: none."""
    slowdown: float = 1.0
    """The slow module steps with probability ``1 / slowdown`` in each tick."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        if self.size < 1:
            found.append(("size", f"{self.size} is invalid: must be >= 1"))
        if self.slowdown < 1.0:
            found.append(("slowdown", f"{self.slowdown} is invalid: must be >= 1"))
        if self.slow_block is not None and self.slow_block < 1:
            found.append(
                ("slow_block", f"{self.slow_block} is invalid: must be >= 1 (module 0 reads data)")
            )
        return found


class ReplayBuffer:
    """A bounded FIFO of tensor tuples, drawn from without removal.

    Args:
        capacity: how many entries it keeps; pushing into a full buffer drops the oldest.
        sampling: ``uniform`` (random entry, from ``generator``) or ``newest``.
        generator: the source of every random draw.

    Examples:
        >>> buffer = ReplayBuffer(2, "newest", torch.Generator().manual_seed(0))
        >>> buffer.push((torch.tensor(1.0),)); buffer.push((torch.tensor(2.0),))
        >>> buffer.push((torch.tensor(3.0),)); len(buffer), float(buffer.sample()[0])
        (2, 3.0)
    """

    def __init__(
        self, capacity: int, sampling: Literal["uniform", "newest"], generator: torch.Generator
    ) -> None:
        if capacity < 1:
            raise ValueError(f"a replay buffer needs capacity >= 1, got {capacity}")
        self.capacity = capacity
        self.sampling = sampling
        self.generator = generator
        self._entries: deque[tuple[Tensor, ...]] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._entries)

    def push(self, entry: tuple[Tensor, ...]) -> None:
        """Store ``entry`` (detached: a buffer holds values, never graph edges)."""
        self._entries.append(tuple(t.detach() for t in entry))

    def sample(self) -> tuple[Tensor, ...]:
        """One stored entry (the buffer must not be empty)."""
        if not self._entries:
            raise IndexError("sample from an empty replay buffer")
        if self.sampling == "newest":
            return self._entries[-1]
        index = int(torch.randint(len(self._entries), (1,), generator=self.generator))
        return self._entries[index]

    def state_dict(self) -> dict[str, Any]:
        """The stored entries (tensors only, safe for ``torch.load(weights_only=True)``)."""
        return {"entries": [list(entry) for entry in self._entries]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the entries saved by ``state_dict``."""
        self._entries = deque((tuple(e) for e in state["entries"]), maxlen=self.capacity)
