"""A replay buffer between two modules, as in DGL's asynchronous variant (1901.08164, Sec.
3.2, Algorithm 2): the module below pushes (activation, target) pairs, the module above draws
from the buffer whenever it is ready to step, so neither waits for the other.

A plain seeded data structure: it knows nothing of engines, processes or devices, and all
its randomness comes from the ``torch.Generator`` it is given, so a run that replays the same
pushes and draws with the same generator state gets the same samples.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

import torch
from torch import Tensor


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
